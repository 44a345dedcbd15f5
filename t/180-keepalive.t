# API connections are kept and reused.  Two rounds of binds at once, each
# API call held 300 ms at the stand-in so that they overlap: with
# passkey_api_keepalive at least the number of calls in flight, the second
# round comes on the connections of the first and opens none (the
# stand-in tells connections apart); with fewer kept, it must open new
# ones.  Counts, not times: the same under valgrind.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use HTTP::Tiny;
use JSON::PP ();
use POSIX ();

repeat_each(1);
no_shuffle();

our $Binds = 12;
our $Out = "/tmp/passkey-keepalive-test.$$";

END { rmdir $Out if $Out }

# $n binds at once, each from its own process; their statuses
sub binds_at_once {
    my ($n, $prefix) = @_;
    my @pids;

    mkdir $Out;

    for my $i (1 .. $n) {
        my $pid = fork;
        die "fork: $!" unless defined $pid;

        if ($pid == 0) {
            my $res = HTTP::Tiny->new(timeout => 30)->post(
                "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}/passkey/bind",
                { headers => { 'Content-Type' => 'application/json' },
                  content => "{\"username\":\"$prefix$i\"}" });
            eval { sdk_record_link(sdk_links_in($res->{content})); 1 }
                or POSIX::_exit(1);
            open my $fh, '>', "$Out/$prefix$i" or POSIX::_exit(1);
            print $fh "$res->{status}\n";
            close $fh;
            POSIX::_exit(0);
        }

        push @pids, $pid;
    }

    waitpid $_, 0 for @pids;

    my @status;
    for my $f (glob "$Out/$prefix*") {
        open my $fh, '<', $f or next;
        chomp(my $s = <$fh> // '');
        close $fh;
        unlink $f;
        push @status, $s;
    }

    return @status;
}

# the distinct connections the API host has seen from this block's nginx
sub api_connections {
    my ($tenant) = @_;

    my $res = HTTP::Tiny->new(timeout => 5)->get(
        "http://127.0.0.1:$ENV{TEST_NGINX_BI_PORT}/__fake/requests"
        . "?tenant=$tenant");
    die "stand-in: $res->{status}" unless $res->{success};

    my $requests = JSON::PP::decode_json($res->{content})->{requests};
    my %seen = map { $_->{connection} => 1 }
               grep { $_->{host} eq 'api' } @$requests;

    return (scalar keys %seen, scalar @$requests);
}

add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;

    return if $dry_run;

    my $name = $block->name;
    my $tenant = block_tenant($block->seq_num);

    my @first = binds_at_once($Binds, 'a');
    my ($conns1, $calls1) = api_connections($tenant);

    my @second = binds_at_once($Binds, 'b');
    my ($conns2, $calls2) = api_connections($tenant);

    Test::More::is(scalar(grep { $_ == 200 } @first, @second), 2 * $Binds,
                   "$name - every bind answered 200");

    # a token, then an identity and a job per bind
    Test::More::is($calls2, 1 + 4 * $Binds,
                   "$name - two API calls a bind, one token");

    if ($name =~ /reused/) {
        Test::More::ok($conns1 >= 2 && $conns1 <= $Binds,
                       "$name - the first round opened $conns1 connections "
                       . "for $Binds binds at once");
        Test::More::is($conns2, $conns1,
                       "$name - the second round opened none");

    } else {
        Test::More::ok($conns2 - $conns1 >= $Binds - 4,
                       "$name - the second round opened "
                       . ($conns2 - $conns1) . " for the calls not kept");
    }
});

run_tests();

__DATA__

=== TEST 1: connections are kept and reused
--- http_config
    passkey_api_keepalive 16;
--- config
    location = /passkey/bind {
        passkey_api_timeout 10s;
        passkey_bind;
    }
--- fault
{"route":"create_identity","type":"delay","delay_ms":300,"count":0}
{"route":"create_job","type":"delay","delay_ms":300,"count":0}
--- request
GET /fake/faults
--- response_body_like: "create_job"



=== TEST 2: only passkey_api_keepalive connections are kept
--- http_config
    passkey_api_keepalive 4;
--- config
    location = /passkey/bind {
        passkey_api_timeout 10s;
        passkey_bind;
    }
--- fault
{"route":"create_identity","type":"delay","delay_ms":300,"count":0}
{"route":"create_job","type":"delay","delay_ms":300,"count":0}
--- request
GET /fake/faults
--- response_body_like: "create_job"
