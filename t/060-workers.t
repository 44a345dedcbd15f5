# With a master and two workers: the access token is shared through shared
# memory, a 403 leaves it alone in every worker, a failed fetch holds back
# every worker for a moment, a graceful reload or quit lets a call in
# flight finish, and a reload that moves the credentials keeps their
# tokens.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use POSIX ();
use HTTP::Tiny;
use Time::HiRes qw(sleep);

master_on();
workers(2);

# sends SIG to the master a little after the block's request started
sub signal_master_later {
    my ($sig, $delay) = @_;

    my $pidfile = ($ENV{TEST_NGINX_SERVROOT} || 't/servroot')
                  . '/logs/nginx.pid';

    my $pid = fork;
    die "fork: $!" unless defined $pid;
    return if $pid;

    sleep $delay;
    if (open my $fh, '<', $pidfile) {
        my $master = <$fh>;
        chomp $master;
        kill $sig, $master;
    }
    POSIX::_exit(0);
}

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
CONF
});

sub bind_req {
    my ($user) = @_;
    return "POST /passkey/bind\n{\"username\":\"$user\"}";
}

our %Flows;

sub get {
    my ($path) = @_;
    return HTTP::Tiny->new(timeout => 10)->get(
        "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}$path");
}

sub post_bind {
    my ($path, $user) = @_;
    return HTTP::Tiny->new(timeout => 10)->post(
        "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}$path",
        { headers => { 'Content-Type' => 'application/json' },
          content => qq({"username":"$user"}) })->{status};
}

sub token_requests {
    my ($stats) = get('/fake/stats')->{content} =~ /"token":(\d+)/;
    return $stats // -1;
}

# the locations' credentials trade places: the token of each set stays in
# the zone, where the new workers find it by its key, not by its place
$Flows{'a reload that moves the credentials keeps their tokens'} = sub {
    my ($block, $name) = @_;

    Test::More::is(post_bind('/a/passkey/bind', 'mv1'), 200, "$name - bind a");
    Test::More::is(post_bind('/b/passkey/bind', 'mv2'), 200, "$name - bind b");

    my $before = token_requests();

    Test::More::ok(reload_nginx(sub {
        my ($conf) = @_;
        $conf =~ s/passkey_api_timeout 7s/passkey_api_timeout 9s/;
        $conf =~ s/passkey_api_timeout 8s/passkey_api_timeout 7s/;
        $conf =~ s/passkey_api_timeout 9s/passkey_api_timeout 8s/;
        $conf =~ s/return 200 "generation 1\\n"/return 200 "generation 2\\n"/;
        return $conf;
    }, sub { get('/generation')->{content} eq "generation 2\n" }),
                   "$name - reloaded");

    Test::More::is(post_bind('/a/passkey/bind', 'mv3'), 200, "$name - bind a");
    Test::More::is(post_bind('/b/passkey/bind', 'mv4'), 200, "$name - bind b");

    # the new workers' fetch at start, had they found no token, is done
    sleep 0.5;

    Test::More::is(token_requests(), $before,
                   "$name - no token requested again ($before before)");
};

run_flows(\%Flows);

run_tests();

__DATA__

=== TEST 1: workers share one token
--- request eval
[map({ main::bind_req("w$_") } 1 .. 8), "GET /fake/stats"]
--- error_code eval
[(200) x 9]
--- response_body_like eval
[(qr/"job_id"/) x 8, qr/"create_job":8,.*"token":1\}/]



=== TEST 2: a graceful reload lets a call in flight finish
--- fault
{"route":"create_identity","type":"delay","delay_ms":1500}
--- init
main::signal_master_later('HUP', 0.5);
--- request eval
main::bind_req("reload")
--- timeout: 5
--- error_code: 200
--- response_body_like: "job_id"
--- no_error_log
[alert]
[crit]
open socket



=== TEST 3: a graceful quit lets a call in flight finish
--- fault
{"route":"create_identity","type":"delay","delay_ms":1500}
--- init
main::signal_master_later('QUIT', 0.5);
--- request eval
main::bind_req("quit")
--- timeout: 5
--- error_code: 200
--- response_body_like: "job_id"
--- no_error_log
[alert]
[crit]
open socket



=== TEST 4: a 403 on one route: no worker fetches the token again
--- fault
{"route":"create_job","type":"status","status":403,"count":0}
--- request eval
[map({ main::bind_req("f$_") } 1 .. 8), "GET /fake/stats"]
--- error_code eval
[(502) x 8, 200]
--- response_body_like eval
[(qr/"code":"api_forbidden"/) x 8, qr/"create_job":8,.*"token":[12]\}/]
--- no_error_log
retrying with a new access token



=== TEST 5: a failed token request holds back both workers
--- fault
{"route":"token","type":"status","status":503,"count":0}
--- request eval
[map({ main::bind_req("g$_") } 1 .. 8), "GET /fake/stats"]
--- error_code eval
[(502) x 8, 200]
--- response_body_like eval
[(qr/"code":"api_unreachable"/) x 8, qr/"create_identity":0,.*"token":[1-4]\}/]



=== TEST 6: a reload that moves the credentials keeps their tokens
--- config
    location = /a/passkey/bind {
        passkey_api_timeout 7s;
        passkey_bind;
    }

    location = /b/passkey/bind {
        passkey_api_timeout 8s;
        passkey_bind;
    }

    location = /generation {
        return 200 "generation 1\n";
    }
--- request
GET /generation
--- response_body
generation 1
