# passkey_redis by host name, resolved by nginx's resolver (never a
# blocking lookup): a name that resolves to the test Redis works; one that
# does not is 503 redis_unavailable with an error line naming it; the
# answer's address is used for the connection.  The test starts its own
# DNS server on 127.0.0.1 (UDP, A records only): redis.passkey.test is
# 127.0.0.1, anything else NXDOMAIN.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use IO::Socket::INET;
use POSIX ();

repeat_each(1);
no_shuffle();

our $DnsPort = ($ENV{TEST_NGINX_SERVER_PORT} || 1984) + 150;
our ($DnsPid, $Queries) = (undef, "/tmp/passkey-dns-test.$$");
$ENV{TEST_NGINX_DNS_PORT} = $DnsPort;

# One question, one answer: enough of RFC 1035 for nginx's resolver.
sub dns_server {
    my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                     LocalPort => $DnsPort, Proto => 'udp')
        or die "dns: $!";

    while (1) {
        my $peer = $sock->recv(my $q, 512) // next;
        next if length $q < 12;

        my ($id) = unpack 'n', $q;
        my ($name, $pos) = ('', 12);

        while ($pos < length $q) {
            my $len = ord substr $q, $pos, 1;
            $pos++;
            last if $len == 0;
            $name .= ($name eq '' ? '' : '.') . substr $q, $pos, $len;
            $pos += $len;
        }

        my ($qtype) = unpack 'n', substr $q, $pos, 2;
        my $question = substr $q, 12, $pos + 4 - 12;

        if (open my $fh, '>>', $Queries) {
            print $fh lc($name), "\n";
            close $fh;
        }

        my $known = lc $name eq 'redis.passkey.test';
        my $a = $known && $qtype == 1;

        # flags: response, recursion available; rcode 3 = NXDOMAIN
        my $flags = 0x8180 | ($known ? 0 : 3);
        my $reply = pack('n6', $id, $flags, 1, $a ? 1 : 0, 0, 0) . $question;
        $reply .= pack('n n n N n C4', 0xc00c, 1, 1, 60, 4, 127, 0, 0, 1)
            if $a;

        $sock->send($reply, 0, $peer);
    }
}

$DnsPid = fork;
die "fork: $!" unless defined $DnsPid;

if ($DnsPid == 0) {
    eval { dns_server() };
    POSIX::_exit(0);
}

END {
    local $?;    # waitpid would make the child's status the test's

    if ($DnsPid) {
        kill 'TERM', $DnsPid;
        waitpid $DnsPid, 0;
    }
    unlink $Queries;
}

sub queried {
    open my $fh, '<', $Queries or return '';
    local $/;
    return <$fh>;
}

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('more_headers', 'Content-Type: application/json')
        unless defined $block->more_headers;
});

# the name went to the resolver, not to a blocking getaddrinfo()
add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;

    return if $dry_run || $block->name !~ /resolver finds/;

    Test::More::like(queried(), qr/^redis\.passkey\.test$/m,
                     $block->name . " - nginx's resolver asked for it");
});

run_tests();

__DATA__

=== TEST 1: a host name nginx's resolver finds
--- config
    location = /passkey/bind {
        resolver       127.0.0.1:$TEST_NGINX_DNS_PORT valid=30s ipv6=off;
        passkey_redis  redis.passkey.test:$TEST_NGINX_REDIS_PORT;
        passkey_bind;
    }
--- request
POST /passkey/bind
{"username":"named-redis"}
--- error_code: 200
--- response_body_like: "job_id":"[0-9a-f]{16}"
--- redis_job
username: ^named-redis$



=== TEST 2: a host name that does not resolve: 503, and the log says so
--- config
    location = /passkey/bind {
        resolver          127.0.0.1:$TEST_NGINX_DNS_PORT ipv6=off;
        resolver_timeout  2s;
        passkey_redis     nowhere.passkey.test:$TEST_NGINX_REDIS_PORT;
        passkey_bind;
    }
--- request
POST /passkey/bind
{"username":"no-redis"}
--- error_code: 503
--- response_body_like: "code":"redis_unavailable"
--- error_log eval
qr/passkey redis "nowhere\.passkey\.test:\d+": nowhere\.passkey\.test could not be resolved \(3: Host not found\)/
