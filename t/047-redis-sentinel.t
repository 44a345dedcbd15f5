# passkey_redis with sentinel=: the master is whatever the sentinels say,
# asked before every new connection.  The file starts its own master, two
# replicas and three sentinels (redis-server --sentinel) on 127.0.0.1,
# the test port + 180 to + 185.
#
# - binds go to the master the sentinels name, named by address or by
#   host (nginx's resolver asks the file's own DNS server); they want a
#   password (sentinel_password_file=), and without it or with a wrong
#   one binds fail with 503 and a line that says why;
# - a failover (SENTINEL FAILOVER) while binds run: no worker blocks (a
#   fast location on the same worker keeps answering), binds fail only
#   with 503 redis_unavailable and only while it lasts, and every job
#   that was answered 200 is in the new master afterwards (replicas=1:
#   a job is answered once a replica has it); with replicas=2 (every
#   replica) also every job answered during and after it.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
require t::RedisSet;
require t::Dns;
use HTTP::Tiny;
use POSIX ();
use Time::HiRes qw(time sleep);

repeat_each(1);
no_shuffle();

our (%Flows, $TODO, $Dir);
our $Base = ($ENV{TEST_NGINX_SERVER_PORT} || 1984) + 180;

# the sentinels want a password (requirepass), from a file of mode 0600
our $SentinelPw = 'sentinel-pw-6f1d2a';
$ENV{TEST_NGINX_SENTINEL_PW} = "$Dir/sentinel_password";
$ENV{TEST_NGINX_WRONG_PW} = "$Dir/wrong_password";

for (['sentinel_password', $SentinelPw], ['wrong_password', 'not-it']) {
    open my $fh, '>', "$Dir/$_->[0]" or die $!;
    print $fh "$_->[1]\n";
    close $fh;
    chmod 0600, "$Dir/$_->[0]";
}

sub scli {
    my ($port, @args) = @_;
    return cli($port, '--no-auth-warning', '-a', $SentinelPw, @args);
}

# sentinels by host name: nginx's resolver asks this server
$ENV{TEST_NGINX_DNS_PORT} = $Base + 6;
start_dns($Base + 6, { 'sentinel.passkey.test' => [127, 0, 0, 1] });

$ENV{TEST_NGINX_SENTINEL_1} = $Base + 2;
$ENV{TEST_NGINX_SENTINEL_2} = $Base + 3;
$ENV{TEST_NGINX_SENTINEL_3} = $Base + 4;

sub master_port {
    my ($ip, $port) = split /\n/, scli($Base + 2, 'SENTINEL',
                                       'get-master-addr-by-name', 'mymaster');
    return $port // 0;
}

sub start_cluster {
    # a master and two replicas: after a failover the other replica
    # follows the new master, and replicas=1 is met again at once
    for my $i (0, 1, 5) {
        my $port = $Base + $i;
        mkdir "$Dir/$port";
        spawn("redis-$port.log", 'redis-server', '--port', $port, '--bind',
              '127.0.0.1', '--save', '', '--appendonly', 'no',
              '--repl-diskless-sync-delay', '0',
              '--dir', "$Dir/$port",
              $i ? ('--replicaof', '127.0.0.1', $Base) : ());
        wait_for("redis on $port", sub { cli($port, 'ping') eq 'PONG' }, 10);
    }

    wait_for('the replicas in sync', sub {
        cli($Base + 1, 'INFO', 'replication') =~ /master_link_status:up/
        && cli($Base + 5, 'INFO', 'replication') =~ /master_link_status:up/
    }, 15);

    for my $i (2 .. 4) {
        my $port = $Base + $i;
        my $conf = "$Dir/sentinel-$port.conf";

        open my $fh, '>', $conf or die $!;
        print $fh "port $port\nbind 127.0.0.1\ndir $Dir\n",
                  "requirepass $SentinelPw\n",
                  "sentinel sentinel-pass $SentinelPw\n",
                  "sentinel monitor mymaster 127.0.0.1 $Base 2\n",
                  "sentinel down-after-milliseconds mymaster 1000\n",
                  "sentinel failover-timeout mymaster 5000\n";
        close $fh;

        spawn("sentinel-$port.log", 'redis-server', $conf, '--sentinel');
        wait_for("sentinel on $port",
                 sub { scli($port, 'ping') eq 'PONG' }, 10);
    }

    # a sentinel fails over only to a replica it knows of
    wait_for('the sentinels know the replicas', sub {
        my $replicas = scli($Base + 2, 'SENTINEL', 'replicas', 'mymaster');
        my ($a, $b) = ($Base + 1, $Base + 5);
        $replicas =~ /^$a$/m && $replicas =~ /^$b$/m
    }, 20);
}


start_cluster();

sub job_in {
    my ($port, $block, $job) = @_;
    return cli($port, 'HGET', block_prefix($block->seq_num) . "job:$job",
               'job_id') eq $job;
}

run_flows(\%Flows);


$Flows{'binds go to the master the sentinels name'} = sub {
    my ($block, $name) = @_;

    my ($status, $job) = bind_as('sentinel-user');

    Test::More::is($status, 200, "$name - 200");
    Test::More::ok($job && job_in(master_port(), $block, $job),
                   "$name - the job is in the master");
};


$Flows{'a failover while binds run'} = sub { failover(@_, 0) };
$Flows{'a failover, with every replica acknowledging each job'}
    = sub { failover(@_, 1) };

# $every: replicas= is every replica, so no job answered 200 is lost
sub failover {
    my ($block, $name, $every) = @_;

    my $before = master_port();

    # with every replica, binds wait for the old master too: it is
    # demoted when the failover ends, and then copies the new one whole
    my $run = $every ? 24 : 14;

    # when the sentinels name the new master: the failover's end
    my $switched;

    my ($binds, $slowest, $t0, $failover) = binds_while($run, 'fo', sub {
        scli($Base + 2, 'SENTINEL', 'FAILOVER', 'mymaster');
    }, sub {
        $switched //= time if master_port() != $before;
    });

    my $after = master_port();
    Test::More::isnt($after, $before, "$name - the sentinels moved the master"
                     . " ($before to $after)");

    Test::More::ok($slowest < 1,
                   sprintf("$name - the fast location answered in %.3f s at"
                           . " worst", $slowest));

    my @binds = @$binds;
    my @ok = grep { $_->[1] == 200 } @binds;
    my @bad = grep { $_->[1] != 200 } @binds;

    Test::More::ok(@ok > 5, "$name - binds got through (" . @ok . " of "
                   . @binds . ")");
    Test::More::is(join(' ', map { "$_->[1] $_->[3]" } grep {
                       $_->[1] != 503 || $_->[3] ne 'redis_unavailable'
                   } @bad), '', "$name - failures are 503 redis_unavailable");

    # failures come while the sentinels fail over, and end within seconds
    # of the first one naming the new master: the others learn it from
    # its hello messages (every 2 s), and replicas=1 waits for a replica
    # to follow the new master (with every replica: for the old master
    # too, once the failover ends).  Then binds go on: none fails in the
    # run's last 4 s.  valgrind slows the worker down many times over.
    my $grace = ($every ? 15 : 7) + ($ENV{TEST_NGINX_USE_VALGRIND} ? 1 : 0);

    my ($last_bad) = sort { $b <=> $a } map { $_->[0] } @bad;

    Test::More::ok($switched && (!@bad || ($last_bad < $switched + $grace
                                           && $last_bad < $t0 + $run - 4)),
                   sprintf("$name - only while the failover lasted (%d "
                           . "failed, the last %.1f s after the failover "
                           . "began, which took %.1f s)", scalar @bad,
                           @bad ? $last_bad - $failover : 0,
                           ($switched // $failover) - $failover));

    Test::More::ok($binds[-1][1] == 200, "$name - binds work after it");

    # every job answered before the failover began is in the new master
    my @before = grep { $_->[0] < $failover } @ok;
    my @missing = grep { !job_in($after, $block, $_->[2]) } @before;
    Test::More::is(scalar @missing, 0, "$name - every job answered 200 "
                   . "before the failover is in the new master");

    my @lost = grep { !job_in($after, $block, $_->[2]) }
               grep { $_->[0] >= $failover } @ok;

    if ($every) {
        # the replica promoted acknowledged every job answered before it
        # was: a job is answered only once every replica has it
        Test::More::is(scalar @lost, 0, "$name - and every job answered "
                       . "during and after it (" . @ok . ")");
        return;
    }

  TODO: {
        # Redis replicates asynchronously: until the sentinels demote the
        # old master, a write it takes (and the replica still following it
        # acknowledges) is lost with the failover.  replicas=1 of two
        # narrows that window; replicas= every replica closes it (the
        # next block)
        local $TODO = 'writes in the first moments of a failover';

        Test::More::is(scalar @lost, 0, "$name - and every job answered "
                       . "during and after it");
    }
}

run_tests();

__DATA__

=== TEST 1: binds go to the master the sentinels name
--- config
    location = /passkey/bind {
        passkey_redis 127.0.0.1:$TEST_NGINX_SENTINEL_1
                      127.0.0.1:$TEST_NGINX_SENTINEL_2
                      127.0.0.1:$TEST_NGINX_SENTINEL_3 sentinel=mymaster
                      sentinel_password_file=$TEST_NGINX_SENTINEL_PW;
        passkey_redis_timeout 5s;
        passkey_bind_mode authenticated;
        passkey_username $http_x_user;
        passkey_bind;
    }

    location = /ready {
        return 200 "ready\n";
    }
--- request
GET /ready
--- response_body
ready
--- no_error_log
sentinel-pw-6f1d2a



=== TEST 2: a failover while binds run
--- config
    location = /passkey/bind {
        passkey_redis 127.0.0.1:$TEST_NGINX_SENTINEL_1
                      127.0.0.1:$TEST_NGINX_SENTINEL_2
                      127.0.0.1:$TEST_NGINX_SENTINEL_3 sentinel=mymaster
                      sentinel_password_file=$TEST_NGINX_SENTINEL_PW
                      replicas=1;
        passkey_redis_timeout 1s;
        passkey_duplicate_window off;
        passkey_bind_mode authenticated;
        passkey_username $http_x_user;
        passkey_bind;
    }

    location = /ready {
        return 200 "ready\n";
    }
--- request
GET /ready
--- response_body
ready



=== TEST 3: a failover, with every replica acknowledging each job
--- config
    location = /passkey/bind {
        passkey_redis 127.0.0.1:$TEST_NGINX_SENTINEL_1
                      127.0.0.1:$TEST_NGINX_SENTINEL_2
                      127.0.0.1:$TEST_NGINX_SENTINEL_3 sentinel=mymaster
                      sentinel_password_file=$TEST_NGINX_SENTINEL_PW
                      replicas=2;
        passkey_redis_timeout 1s;
        passkey_duplicate_window off;
        passkey_bind_mode authenticated;
        passkey_username $http_x_user;
        passkey_bind;
    }

    location = /ready {
        return 200 "ready\n";
    }
--- request
GET /ready
--- response_body
ready



=== TEST 4: sentinels by host name, through nginx's resolver
--- config
    location = /passkey/bind {
        resolver       127.0.0.1:$TEST_NGINX_DNS_PORT ipv6=off;
        passkey_redis  nowhere.passkey.test:$TEST_NGINX_SENTINEL_1
                       sentinel.passkey.test:$TEST_NGINX_SENTINEL_2
                       sentinel=mymaster
                       sentinel_password_file=$TEST_NGINX_SENTINEL_PW;
        passkey_redis_timeout 5s;
        passkey_bind_mode authenticated;
        passkey_username $http_x_user;
        passkey_bind;
    }
--- more_headers
Content-Type: application/json
X-User: named-sentinels
--- request
POST /passkey/bind
{}
--- error_code: 200
--- response_body_like: "job_id":"[0-9a-f]{16}"
--- error_log eval
qr/passkey redis: sentinel "nowhere\.passkey\.test:\d+" could not be resolved \(3: Host not found\)/
--- no_error_log
[crit]



=== TEST 5: nginx -t: sentinels by host name need a resolver
--- config
    location = /passkey/bind {
        passkey_redis  127.0.0.1:6379 sentinel.passkey.test:26379
                       sentinel=mymaster;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_redis" "mymaster" names a host: it needs a "resolver" in this location or above



=== TEST 6: sentinels that want a password, asked without one
--- config
    location = /passkey/bind {
        passkey_redis 127.0.0.1:$TEST_NGINX_SENTINEL_1 sentinel=mymaster;
        passkey_bind_mode authenticated;
        passkey_username $http_x_user;
        passkey_bind;
    }
--- more_headers
Content-Type: application/json
X-User: no-sentinel-password
--- request
POST /passkey/bind
{}
--- error_code: 503
--- response_body_like: "code":"redis_unavailable"
--- error_log
passkey redis: sentinel "127.0.0.1:
refused to tell where the master "mymaster" is: NOAUTH



=== TEST 7: sentinels asked with a wrong password
--- config
    location = /passkey/bind {
        passkey_redis 127.0.0.1:$TEST_NGINX_SENTINEL_1 sentinel=mymaster
                      sentinel_password_file=$TEST_NGINX_WRONG_PW;
        passkey_bind_mode authenticated;
        passkey_username $http_x_user;
        passkey_bind;
    }
--- more_headers
Content-Type: application/json
X-User: wrong-sentinel-password
--- request
POST /passkey/bind
{}
--- error_code: 503
--- response_body_like: "code":"redis_unavailable"
--- error_log eval
qr/passkey redis: AUTH on sentinel "127\.0\.0\.1:\d+" failed: WRONGPASS/
--- no_error_log
not-it



=== TEST 8: nginx -t: a sentinel password without sentinel=
--- config
    location = /passkey/bind {
        passkey_redis 127.0.0.1:6379
                      sentinel_password_file=$TEST_NGINX_SENTINEL_PW;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_redis": sentinel_password_file= needs sentinel=



=== TEST 9: nginx -t: a sentinel user without a password
--- config
    location = /passkey/bind {
        passkey_redis 127.0.0.1:6379 sentinel=mymaster sentinel_user=passkey;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_redis": sentinel_user= needs sentinel_password_file=
