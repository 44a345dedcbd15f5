# passkey_redis ... cluster: Redis Cluster.  The file starts its own
# cluster on 127.0.0.1, three masters and a replica of each (the test
# port + 190 to + 195, made with redis-cli --cluster create).
#
# - binds spread their jobs over the masters; the guard's script (a
#   duplicate lock and rate limit buckets) runs in one slot, by its hash
#   tag; a remembered identity is written apart from the job and used;
# - a failover (CLUSTER FAILOVER on a replica) while binds run: no worker
#   blocks, binds fail only with 503 redis_unavailable and only while it
#   lasts, and every job answered 200 is in the cluster afterwards;
# - slots moved to another master (redis-cli --cluster reshard: MOVED
#   and ASK) while binds run: every bind is answered 200, every job is
#   in the cluster;
# - nginx -t refuses what cannot work with a cluster, naming the
#   directive.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
require t::RedisSet;
use HTTP::Tiny;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);

repeat_each(1);
no_shuffle();

our (%Flows, $Dir);
our $Base = ($ENV{TEST_NGINX_SERVER_PORT} || 1984) + 190;

$ENV{TEST_NGINX_CLUSTER_1} = $Base;
$ENV{TEST_NGINX_CLUSTER_2} = $Base + 1;

sub all_ok {
    for my $i (0 .. 5) {
        return 0 unless cli($Base + $i, 'CLUSTER', 'INFO')
                        =~ /cluster_state:ok/;
    }
    return 1;
}

# the ports of the masters, each with the number of slots it serves
sub masters {
    my %m;

    for (split /\n/, cli($Base, 'CLUSTER', 'NODES')) {
        my @f = split ' ';
        next unless $f[2] =~ /(?:^|,)master(?:,|$)/ && $f[2] !~ /fail/;
        my ($port) = $f[1] =~ /:(\d+)@/;
        $m{$port} = 0;
        for (@f[8 .. $#f]) {
            next if /^\[/;
            my ($a, $b) = split /-/;
            $m{$port} += ($b // $a) - $a + 1;
        }
    }

    return \%m;
}

sub start_cluster {
    for my $i (0 .. 5) {
        my $port = $Base + $i;
        mkdir "$Dir/$port";
        spawn("redis-$port.log", 'redis-server', '--port', $port, '--bind',
              '127.0.0.1', '--save', '', '--appendonly', 'no',
              '--dir', "$Dir/$port", '--cluster-enabled', 'yes',
              '--cluster-config-file', "nodes-$port.conf",
              '--cluster-node-timeout', '2000');
        wait_for("redis on $port", sub { cli($port, 'ping') eq 'PONG' }, 10);
    }

    # its report on stdout would mix with TAP
    system('sh', '-c', 'exec redis-cli "$@" > "$0" 2>&1', "$Dir/create.log",
           '--cluster', 'create',
           map({ "127.0.0.1:" . ($Base + $_) } 0 .. 5),
           '--cluster-replicas', '1', '--cluster-yes') == 0
        or die "redis-cli --cluster create failed";

    wait_for('the cluster', \&all_ok, 30);

    # every replica in sync, so that a failover may start at once
    wait_for('the replicas in sync', sub {
        my $up = 0;
        for my $i (0 .. 5) {
            my $info = cli($Base + $i, 'INFO', 'replication');
            $up++ if $info =~ /role:slave/
                     && $info =~ /master_link_status:up/;
        }
        $up == 3
    }, 30);
}


start_cluster();

# read through the cluster: redis-cli -c follows MOVED
sub job_in_cluster {
    my ($block, $job) = @_;
    return cli($Base, '-c', 'HGET', block_prefix($block->seq_num)
               . "job:$job", 'job_id') eq $job;
}

# the master that holds the job's key
sub job_master {
    my ($block, $job) = @_;
    my $key = block_prefix($block->seq_num) . "job:$job";

    for my $port (keys %{ masters() }) {
        return $port if cli($port, 'EXISTS', $key) eq '1';
    }

    return 0;
}

sub api_routes {
    my ($block) = @_;

    my $tenant = block_tenant($block->seq_num);
    my $res = HTTP::Tiny->new(timeout => 10)->get(
        "http://127.0.0.1:$ENV{TEST_NGINX_BI_PORT}/__fake/requests"
        . "?tenant=$tenant");
    die "stand-in: $res->{status}" unless $res->{success};

    return join ' ', map { $_->{route} }
           @{ JSON::PP::decode_json($res->{content})->{requests} };
}

run_flows(\%Flows);


$Flows{'binds spread their jobs over the masters'} = sub {
    my ($block, $name) = @_;

    my (%on, @missing);

    for my $n (1 .. 12) {
        my ($status, $job) = bind_as("spread-$n");
        Test::More::is($status, 200, "$name - bind $n: 200");
        next unless $job;
        push @missing, $job unless job_in_cluster($block, $job);
        $on{job_master($block, $job)}++;
    }

    Test::More::is(scalar @missing, 0, "$name - every job is in the cluster");
    Test::More::ok(keys %on >= 2, "$name - on more than one master ("
                   . join(' ', map { "$_:$on{$_}" } sort keys %on) . ")");

    # the duplicate lock and two buckets: one script, one slot
    my ($status) = bind_as('spread-1');
    Test::More::is($status, 409, "$name - the duplicate lock holds");

    # the identity remembered by the first bind of spread-2: its next
    # bind (another location, no duplicate lock) costs one API call
    my $before = api_routes($block);
    my $res = HTTP::Tiny->new(timeout => 30)->post(url('/again'),
        { headers => { 'Content-Type' => 'application/json',
                       'X-User' => 'spread-2' },
          content => '{}' });
    sdk_record_link(sdk_links_in($res->{content}));
    Test::More::is($res->{status}, 200, "$name - a known user: 200");

    my $after = api_routes($block);
    Test::More::is(substr($after, length $before), ' create_job',
                   "$name - a known user: one API call");
};


$Flows{'a failover while binds run'} = sub {
    my ($block, $name) = @_;

    my $before = masters();
    my ($victim) = sort keys %$before;

    # the replica of that master takes over, which the master agrees to
    my ($replica) = grep {
        cli($_, 'INFO', 'replication') =~ /master_port:$victim\b/
    } map { $Base + $_ } 0 .. 5;

    die "no replica of $victim" unless $replica;

    my ($binds, $slowest, $t0) = binds_while(10, 'fo', sub {
        cli($replica, 'CLUSTER', 'FAILOVER');
    });

    wait_for('the failover', sub { exists masters()->{$replica} }, 10);

    my $failover = $t0 + 1.5;
    my @ok = grep { $_->[1] == 200 } @$binds;
    my @bad = grep { $_->[1] != 200 } @$binds;

    Test::More::ok(exists masters()->{$replica} && !masters()->{$victim},
                   "$name - the replica $replica took over from $victim");

    Test::More::ok($slowest < 1,
                   sprintf("$name - the fast location answered in %.3f s at"
                           . " worst", $slowest));

    Test::More::ok(@ok > 5, "$name - binds got through (" . @ok . " of "
                   . @$binds . ")");
    Test::More::is(join(' ', map { "$_->[1] $_->[3]" } grep {
                       $_->[1] != 503 || $_->[3] ne 'redis_unavailable'
                   } @bad), '', "$name - failures are 503 redis_unavailable");

    # a manual failover takes a moment: failures end within 4 s of it
    my ($last_bad) = sort { $b <=> $a } map { $_->[0] } @bad;
    my $grace = $ENV{TEST_NGINX_USE_VALGRIND} ? 8 : 4;

    Test::More::ok(!@bad || $last_bad < $failover + $grace,
                   sprintf("$name - only while the failover lasted (%d "
                           . "failed, the last %.1f s after it began)",
                           scalar @bad, @bad ? $last_bad - $failover : 0));

    Test::More::ok($binds->[-1][1] == 200, "$name - binds work after it");

    my @missing = grep { !job_in_cluster($block, $_->[2]) } @ok;
    Test::More::is(scalar @missing, 0, "$name - every job answered 200 is "
                   . "in the cluster (" . @ok . ")");
};


$Flows{'slots move while binds run'} = sub {
    my ($block, $name) = @_;

    my $before = masters();
    my ($from, $to) = sort keys %$before;

    my ($binds, $slowest) = binds_while(10, 'rs', sub {
        open STDOUT, '>', "$Dir/reshard.log";
        open STDERR, '>&', \*STDOUT;
        exec 'redis-cli', '--cluster', 'reshard', "127.0.0.1:$Base",
             '--cluster-from', cli($from, 'CLUSTER', 'MYID'),
             '--cluster-to', cli($to, 'CLUSTER', 'MYID'),
             '--cluster-slots', '2000', '--cluster-yes',
             '--cluster-pipeline', '5';
    });

    my $after = masters();

    Test::More::is($after->{$to} - $before->{$to}, 2000,
                   "$name - 2000 slots moved from $from to $to");

    Test::More::ok($slowest < 1,
                   sprintf("$name - the fast location answered in %.3f s at"
                           . " worst", $slowest));

    my @bad = grep { $_->[1] != 200 } @$binds;
    Test::More::is(join(' ', map { "$_->[1] $_->[3]" } @bad), '',
                   "$name - every bind is answered 200 (" . @$binds . ")");

    my @missing = grep { $_->[1] == 200 && !job_in_cluster($block, $_->[2]) }
                  @$binds;
    Test::More::is(scalar @missing, 0, "$name - every job is in the "
                   . "cluster");
};

run_tests();

__DATA__

=== TEST 1: binds spread their jobs over the masters
--- config
    location = /passkey/bind {
        passkey_redis 127.0.0.1:$TEST_NGINX_CLUSTER_1
                      127.0.0.1:$TEST_NGINX_CLUSTER_2 cluster;
        passkey_bind_mode authenticated;
        passkey_username $http_x_user;
        passkey_limit $remote_addr rate=100/m burst=100;
        passkey_limit $http_x_user rate=100/m burst=100;
        passkey_bind;
    }

    location = /again {
        passkey_redis 127.0.0.1:$TEST_NGINX_CLUSTER_1
                      127.0.0.1:$TEST_NGINX_CLUSTER_2 cluster;
        passkey_bind_mode authenticated;
        passkey_username $http_x_user;
        passkey_duplicate_window off;
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
[warn]



=== TEST 2: a failover while binds run
--- config
    location = /passkey/bind {
        passkey_redis 127.0.0.1:$TEST_NGINX_CLUSTER_1
                      127.0.0.1:$TEST_NGINX_CLUSTER_2 cluster replicas=1;
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



=== TEST 3: slots move while binds run
--- config
    location = /passkey/bind {
        passkey_redis 127.0.0.1:$TEST_NGINX_CLUSTER_1
                      127.0.0.1:$TEST_NGINX_CLUSTER_2 cluster;
        passkey_bind_mode authenticated;
        passkey_username $http_x_user;
        passkey_limit $http_x_user rate=100/m burst=100;
        passkey_bind;
    }

    location = /ready {
        return 200 "ready\n";
    }
--- request
GET /ready
--- response_body
ready



=== TEST 4: nginx -t: cluster and sentinel= exclude each other
--- config
    location = /passkey/bind {
        passkey_redis 127.0.0.1:6379 127.0.0.1:6380 cluster
                      sentinel=mymaster;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_redis" "127.0.0.1:6379": cluster and sentinel= exclude each other



=== TEST 5: nginx -t: a cluster has database 0 only
--- config
    location = /passkey/bind {
        passkey_redis redis://127.0.0.1:6379/2 cluster;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_redis" "redis://127.0.0.1:6379/2": a cluster has database 0 only



=== TEST 6: nginx -t: a cluster over a unix socket
--- config
    location = /passkey/bind {
        passkey_redis unix:/run/redis.sock cluster;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_redis" "unix:/run/redis.sock": a cluster is reached over TCP



=== TEST 7: nginx -t: TLS to a cluster named by address needs tls_name=
--- config
    location = /passkey/bind {
        passkey_redis rediss://127.0.0.1:6379 cluster tls_verify=off;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_redis" "rediss://127.0.0.1:6379": cluster with TLS needs tls_name=: the nodes are known by address



=== TEST 8: nginx -t: more seeds are numeric
--- config
    location = /passkey/bind {
        passkey_redis 127.0.0.1:6379 redis.internal:6379 cluster;
        passkey_bind;
    }
--- must_die
--- error_log
invalid address "redis.internal:6379" in "passkey_redis": a cluster's nodes after the first are a numeric IP address and port



=== TEST 9: nginx -t: several addresses need cluster or sentinel=
--- config
    location = /passkey/bind {
        passkey_redis 127.0.0.1:6379 127.0.0.1:6380;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_redis" names several addresses: sentinels (sentinel=) or a cluster's nodes (cluster)
