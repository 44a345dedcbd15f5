# Two nginx nodes, one Redis: a site that outgrows one nginx shares jobs,
# links, limits and Idempotency-Keys through Redis.  Node A is the block's
# nginx; node B is a second nginx the test starts from A's very
# configuration, on another port (the test port + 170), with its own
# workers, connections and token fetch.
#
# - a job made on A is read and revoked on B, and A then sees it revoked;
# - an emailed link handed over on A is refused on B (reopen off);
# - a limit holds across both: the binds of one user on A and B share one
#   bucket;
# - an Idempotency-Key used on A is replayed by B, byte for byte.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(sleep);

repeat_each(1);
no_shuffle();

# nginx's debug lines show request lines, and links in them, before any
# module runs (docs/design.md): the link tests run at info
log_level('info');

our %Flows;
our $PortB = ($ENV{TEST_NGINX_SERVER_PORT} || 1984) + 170;
our $DirB = tempdir('passkey-node-b.XXXXXX', TMPDIR => 1, CLEANUP => 1);
our $PidB;

require t::Invoke;

# node B: A's configuration with B's port and B's files
sub start_b {
    my $root = $ENV{TEST_NGINX_SERVROOT} || 't/servroot';
    my $conf = slurp("$root/conf/nginx.conf");
    my $port = $ENV{TEST_NGINX_SERVER_PORT} || 1984;

    $conf =~ s/\Q$root\E/$DirB/g;
    $conf =~ s{(\blisten\s+)(127\.0\.0\.1:)?$port\b}
              {$1 . ($2 // '') . $PortB}ge;

    # the app behind t::Invoke's /bind page: B's own, on a port of its own
    $conf =~ s/(listen\s+127\.0\.0\.1:)\d+(;\s+access_log off;)/
              $1 . ($PortB + 1) . $2/e;

    make_path("$DirB/conf", "$DirB/logs", "$DirB/html");

    open my $fh, '>', "$DirB/conf/nginx.conf" or die $!;
    print $fh $conf;
    close $fh;

    # a node B left over would answer in this one's place
    die "port $PortB is taken"
        if HTTP::Tiny->new(timeout => 1)->get(b_url() . '/ready')->{status}
           != 599;

    $PidB = fork;
    die "fork: $!" unless defined $PidB;

    if ($PidB == 0) {
        open STDERR, '>', "$DirB/logs/stderr";
        { exec $ENV{TEST_NGINX_BINARY} || 'nginx', '-p', "$DirB/",
               '-c', "$DirB/conf/nginx.conf"; }
        POSIX::_exit(1);
    }

    for (1 .. 100) {
        my $res = HTTP::Tiny->new(timeout => 2)
                  ->get("http://127.0.0.1:$PortB/ready");
        return if $res->{status} == 200;
        sleep 0.1;
    }

    die "node B did not start: " . slurp("$DirB/logs/stderr")
        . slurp("$DirB/logs/error.log");
}

sub stop_b {
    return unless $PidB;

    # the master, by its pid file too: the one nginx really runs
    my ($master) = slurp("$DirB/logs/nginx.pid") =~ /(\d+)/;

    for my $pid (grep { defined } $master, $PidB) {
        kill 'TERM', $pid;
    }

    for (1 .. 50) {
        waitpid $PidB, POSIX::WNOHANG();
        last unless kill(0, $PidB) || ($master && kill(0, $master));
        sleep 0.1;
    }

    for my $pid (grep { defined && kill 0, $_ } $master, $PidB) {
        kill 'KILL', $pid;
    }

    waitpid $PidB, 0;
    unlink "$DirB/logs/nginx.pid";
    $PidB = undef;
}


END {
    local $?;
    stop_b();
}

sub b_url { "http://127.0.0.1:$PortB" }

sub on_b {
    my ($url) = @_;
    my $port = $ENV{TEST_NGINX_SERVER_PORT} || 1984;
    $url =~ s{^http://127\.0\.0\.1:$port}{b_url()}e;
    return $url;
}

sub bind_on {
    my ($base, $user, %headers) = @_;
    return HTTP::Tiny->new(timeout => 30)->post("$base/passkey/limited",
        { headers => { 'Content-Type' => 'application/json',
                       'X-User' => $user, %headers },
          content => '{}' });
}

run_flows(\%Flows);


$Flows{'a job made on one node is read and revoked on the other'} = sub {
    my ($block, $name) = @_;

    start_b();

    my ($job) = bind_job('RETURN');

    my $res = get(b_url() . "/passkey/jobs/$job");
    Test::More::is($res->{status}, 200, "$name - B reads A's job");
    Test::More::like($res->{content}, qr/"job_id":"$job"/,
                     "$name - the same job");

    $res = HTTP::Tiny->new(timeout => 30)
           ->post(b_url() . "/passkey/revoke/$job:revoke");
    Test::More::is($res->{status}, 200, "$name - B revokes it");

    $res = get(nginx_url() . "/passkey/jobs/$job");
    Test::More::like($res->{content}, qr/"state":"REVOKED"/,
                     "$name - A sees it revoked");

    stop_b();
};


$Flows{'an emailed link handed over on one node is refused on the other'}
= sub {
    my ($block, $name) = @_;

    start_b();

    my $link = email_job($block);

    my $res = get($link->{url});
    Test::More::is($res->{status}, 302, "$name - A hands the link over");

    $res = get(on_b($link->{url}));
    Test::More::is($res->{status}, 409, "$name - B refuses it")
        or Test::More::diag(on_b($link->{url}) =~ s/token=[^&]+/token=.../r,
                            slurp("$DirB/logs/error.log"));
    Test::More::like($res->{content}, qr/link_already_used|already used/,
                     "$name - as used");

    stop_b();
};


$Flows{'a limit and an Idempotency-Key hold across both nodes'} = sub {
    my ($block, $name) = @_;

    start_b();

    # two binds an hour for a user: one on A, one on B, the third refused
    my @status = map { $_->{status} }
                 bind_on(nginx_url(), 'lim'), bind_on(b_url(), 'lim'),
                 bind_on(nginx_url(), 'lim');

    Test::More::is("@status", '200 200 429',
                   "$name - one bucket for both nodes");

    my $key = 'two-nodes-key-' . block_tenant($block->seq_num);
    my $first = bind_on(nginx_url(), 'idem', 'Idempotency-Key' => $key);
    my $again = bind_on(b_url(), 'idem', 'Idempotency-Key' => $key);

    Test::More::is($first->{status}, 200, "$name - A: 200");
    Test::More::is($again->{headers}{'idempotent-replayed'}, 'true',
                   "$name - B replays A's answer");
    Test::More::is($again->{content}, $first->{content},
                   "$name - byte for byte");

    stop_b();
};

run_tests();

__DATA__

=== TEST 1: a job made on one node is read and revoked on the other
--- config
    location /passkey/jobs/ {
        passkey_job_refresh_interval 0;
        passkey_job_status;
    }

    location /passkey/revoke/ {
        passkey_job_revoke;
    }



=== TEST 2: an emailed link handed over on one node is refused on the other
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_invoke_reopen off;
        passkey_invoke_redirect /app/finish;
    }



=== TEST 3: a limit and an Idempotency-Key hold across both nodes
--- config
    location = /passkey/limited {
        passkey_bind_mode authenticated;
        passkey_username $http_x_user;
        passkey_duplicate_window off;
        passkey_limit $passkey_username rate=2/h;
        passkey_bind;
    }
