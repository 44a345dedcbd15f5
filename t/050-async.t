# Nothing blocks the worker: a slow API call does not delay other requests
# on the same (only) worker; a client that leaves mid-call ends the call;
# many binds at once share one token request.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use POSIX ();
use Time::HiRes qw(time sleep);
use HTTP::Tiny;

our ($Start, @Children);
our $Out = "/tmp/passkey-async-test.$$";

# runs binds in child processes, in the background of a block's request
sub background_binds {
    my ($n, $prefix) = @_;

    # under valgrind nginx may still be starting
    my $http = HTTP::Tiny->new(timeout => 2);
    for (1 .. 100) {
        last if $http->get(
            "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}/fast")->{success};
        sleep 0.1;
    }

    $Start = time;
    @Children = ();
    mkdir $Out;

    for my $i (1 .. $n) {
        my $pid = fork;
        die "fork: $!" unless defined $pid;

        if ($pid == 0) {
            my $res = HTTP::Tiny->new(timeout => 10)->post(
                "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}/passkey/bind",
                { headers => { 'Content-Type' => 'application/json' },
                  content => "{\"username\":\"$prefix$i\"}" });
            eval { sdk_record_link(sdk_links_in($res->{content})); 1 }
                or POSIX::_exit(1);
            open my $fh, '>', "$Out/$prefix$i" or POSIX::_exit(1);
            printf $fh "%d %.3f\n", $res->{status}, time - $Start;
            close $fh;
            POSIX::_exit(0);
        }

        push @Children, $pid;
    }

    sleep 0.3;      # let them reach the API
}

sub background_results {
    waitpid $_, 0 for @Children;
    my @res;
    for my $f (sort glob "$Out/*") {
        open my $fh, '<', $f or next;
        my $line = <$fh>;
        close $fh;
        unlink $f;
        push @res, [split ' ', $line];
    }
    return @res;
}

END { rmdir $Out if $Out }

add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    my $name = $block->name;

    return if $dry_run;

    if ($name =~ /does not wait/) {
        my $fast = time - $Start;
        my @res = background_results();

        # valgrind slows everything down; that run is about memory
        Test::More::ok($fast < 1.5 || $ENV{TEST_NGINX_USE_VALGRIND},
            sprintf("$name - /fast answered %.3f s after the binds started",
                    $fast));
        Test::More::is(scalar @res, 1, "$name - the bind finished");
        Test::More::is($res[0][0], 200, "$name - the bind answered 200");
        Test::More::ok($res[0][1] >= 2,
            "$name - the bind took the 2 s the API took");
    }

    if ($name =~ /share one token/ && $req_idx == 0) {
        my @res = background_results();
        Test::More::is(scalar(grep { $_->[0] == 200 } @res), 10,
                       "$name - all 10 binds answered 200");
        my ($max) = sort { $b <=> $a } map { $_->[1] } @res;
        Test::More::ok($max < 3 || $ENV{TEST_NGINX_USE_VALGRIND},
            sprintf("$name - the binds ran concurrently (%.3f s)", $max));
    }
});

repeat_each(1);
no_shuffle();

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('more_headers', 'Content-Type: application/json')
        unless defined $block->more_headers;

    $block->set_value('config', ($block->config // '') . <<'CONF');
    location = /passkey/bind {
        passkey_bind;
    }
    location = /fast {
        return 200 "fast\n";
    }
CONF
});

sub bind_req {
    my ($user) = @_;
    return "POST /passkey/bind\n{\"username\":\"$user\"}";
}

run_tests();

# TEST 3's call was cancelled when its client left: the identity request
# had reached the API, the job request never did (under valgrind nginx
# may be so slow that the client leaves before the identity request)
{
    my $tenant = block_tenant(3);
    my $res = HTTP::Tiny->new(timeout => 5)->get(
        "http://127.0.0.1:$ENV{TEST_NGINX_BI_PORT}/__fake/stats"
        . "?tenant=$tenant");
    my $identity = $ENV{TEST_NGINX_USE_VALGRIND} ? '[01]' : '1';
    like($res->{content}, qr/"create_identity":$identity,"create_job":0,/,
         "the abandoned bind created no job");
}

__DATA__

=== TEST 1: a fast request does not wait for a slow API call
--- fault
{"route":"create_identity","type":"delay","delay_ms":2000}
--- init
main::background_binds(1, "slow");
--- request
GET /fast
--- timeout: 5
--- response_body
fast



=== TEST 2: many binds at once share one token request
--- fault
{"route":"token","type":"delay","delay_ms":500}
{"route":"create_identity","type":"delay","delay_ms":500,"count":10}
--- init
main::background_binds(10, "many");
--- request eval
["GET /fake/sleep?ms=10", "GET /fake/stats"]
--- response_body_like eval
[qr/slept/, qr/"create_identity":10,"create_job":10,.*"token":1\}/]



=== TEST 3: a client that leaves mid-call ends the call
--- fault
{"route":"create_identity","type":"delay","delay_ms":1000}
--- request eval
main::bind_req("gone")
--- timeout: 0.3
--- abort
--- ignore_response
--- wait: 1.5
--- error_log
client prematurely closed connection
