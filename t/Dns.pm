# A DNS server for the tests of host names (t/045-redis-names.t,
# t/047-redis-sentinel.t), loaded into the test file's package: UDP on
# 127.0.0.1, one question and one answer, enough of RFC 1035 for nginx's
# resolver.  The names given have an A record; anything else is
# NXDOMAIN.  The names asked are recorded, to show that nginx's resolver
# asked rather than a blocking getaddrinfo().

package main;

use strict;
use warnings;
use IO::Socket::INET;
use POSIX ();

our ($DnsPid, $DnsQueries) = (undef, "/tmp/passkey-dns-test.$$");

# $names: { lowercase name => [four address bytes] }
sub start_dns {
    my ($port, $names) = @_;

    my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                     LocalPort => $port, Proto => 'udp')
        or die "dns: $!";

    $DnsPid = fork;
    die "fork: $!" unless defined $DnsPid;

    if ($DnsPid) {
        close $sock;
        return;
    }

    eval { dns_serve($sock, $names) };
    POSIX::_exit(0);
}

sub dns_serve {
    my ($sock, $names) = @_;
    my $parent = getppid;

    while (1) {

        # a test file that is killed cannot stop its server: the server
        # stops once it is orphaned, and leaves the port to the next run
        return if getppid != $parent;

        my $ready = '';
        vec($ready, fileno $sock, 1) = 1;
        next unless select($ready, undef, undef, 0.5);

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

        if (open my $fh, '>>', $DnsQueries) {
            print $fh lc($name), "\n";
            close $fh;
        }

        my $ip = $names->{lc $name};
        my $a = $ip && $qtype == 1;

        # flags: response, recursion available; rcode 3 = NXDOMAIN
        my $flags = 0x8180 | ($ip ? 0 : 3);
        my $reply = pack('n6', $id, $flags, 1, $a ? 1 : 0, 0, 0) . $question;
        $reply .= pack('n n n N n C4', 0xc00c, 1, 1, 60, 4, @$ip) if $a;

        $sock->send($reply, 0, $peer);
    }
}

# the names asked so far, one per line
sub dns_queried {
    open my $fh, '<', $DnsQueries or return '';
    local $/;
    return <$fh>;
}

END {
    local $?;    # waitpid would make the child's status the test's

    if ($DnsPid) {
        kill 'TERM', $DnsPid;
        waitpid $DnsPid, 0;
    }
    unlink $DnsQueries;
}

1;
