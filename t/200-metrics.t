# passkey_metrics: Prometheus text that promtool accepts, with requests by
# endpoint and status, problems by code, API calls by route and status
# (the same numbers the API stand-in counted), API and Redis latency, the
# Redis server's state, token refreshes and age, and the claims held by
# requests in flight; summed over both workers; and the directive's
# configuration errors.
#
# Counts are compared before and after a block's own traffic, so the
# token fetched at start and anything before do not matter.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use IO::Socket::INET;
use HTTP::Tiny;
use File::Temp qw(tempfile);
use Time::HiRes qw(sleep);

master_on();
workers(2);

repeat_each(1);
no_shuffle();

# a free port for the "reuseport" listener of the two-workers block, and
# one where a socket listens but never answers (a hung Redis)
{
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1:0')
        or die "cannot find a free port: $!";
    $ENV{TEST_NGINX_REUSEPORT_PORT} = $s->sockport;
    close $s;
}

our $Hung = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1:0')
    or die "cannot listen: $!";
$ENV{TEST_NGINX_HUNG_PORT} = $Hung->sockport;

our %Flows;

add_block_preprocessor(sub {
    my $block = shift;

    return if $block->must_die;

    $block->set_value('config', ($block->config // '') . <<'CONF');
    location = /metrics {
        passkey_metrics;
    }
    location = /ready {
        return 200 "ready\n";
    }
CONF

    unless (defined $block->request) {
        $block->set_value('request', 'GET /ready');
        $block->set_value('response_body', "ready\n");
    }
});

run_flows(\%Flows);

our $Ua = HTTP::Tiny->new(timeout => 30);

sub url {
    my ($path, $port) = @_;
    $port //= $ENV{TEST_NGINX_SERVER_PORT};
    return "http://127.0.0.1:$port$path";
}

# the series of a scrape: "name{labels}" => value
sub parse {
    my ($text) = @_;
    my %m;

    for (split /\n/, $text) {
        next if /^#/ || !/\S/;
        my ($series, $value) = /^(\S+) (\S+)$/ or die "bad line: $_";
        $m{$series} = $value;
    }

    return \%m;
}

sub scrape {
    my ($port) = @_;
    my $res = $Ua->get(url('/metrics', $port));
    die "GET /metrics: $res->{status}" unless $res->{status} == 200;
    return wantarray ? (parse($res->{content}), $res) : parse($res->{content});
}

# a scrape once the workers' token is in (under valgrind it comes late),
# so that its call is not counted as the block's
sub scrape_with_token {
    my $m;

    for (1 .. 100) {
        $m = scrape();
        last if $m->{'passkey_token_valid{token="0",'
                     . 'client_id="passkey-client"}'};
        sleep 0.1;
    }

    return $m;
}

# a scrape once the last n requests since $b are counted: a request is
# counted as it is logged, just after its answer went out
sub scrape_after {
    my ($b, $n) = @_;
    my ($m, $res);

    for (1 .. 100) {
        ($m, $res) = scrape();
        last if delta_sum($b, $m, qr/^passkey_requests_total/) >= $n;
        sleep 0.05;
    }

    return wantarray ? ($m, $res) : $m;
}

sub delta {
    my ($before, $after, $series) = @_;
    return ($after->{$series} // 0) - ($before->{$series} // 0);
}

# the sum of the deltas of every series that matches
sub delta_sum {
    my ($before, $after, $re) = @_;
    my $n = 0;
    my %all = map { $_ => 1 } keys %$before, keys %$after;
    $n += delta($before, $after, $_) for grep { /$re/ } keys %all;
    return $n;
}

# what each series of a family counted between two scrapes, as expected:
# { 'label="value",...' => n }
sub deltas_are {
    my ($before, $after, $family, $want, $name) = @_;

    for my $l (sort keys %$want) {
        Test::More::is(delta($before, $after, "$family\{$l}"), $want->{$l},
                       "$name - $family\{$l}");
    }
}

sub post {
    my ($path, $body, %headers) = @_;
    return $Ua->post(url($path), {
        headers => { 'Content-Type' => 'application/json', %headers },
        content => $body });
}

sub bind_as {
    my ($path, $user, %headers) = @_;
    my $res = post($path, qq({"username":"$user"}), %headers);
    sdk_record_link(sdk_links_in($res->{content}));
    return $res;
}

sub stats {
    my ($block) = @_;
    my $res = $Ua->get("http://127.0.0.1:$ENV{TEST_NGINX_BI_PORT}"
                       . "/__fake/stats?tenant=" . block_tenant($block->seq_num));
    return JSON::PP::decode_json($res->{content});
}

# the buckets of a histogram's series grow, and +Inf is its count
sub check_histogram {
    my ($m, $name, $label, $name_of) = @_;
    my @le;
    for my $k (keys %$m) {
        push @le, [$1, $m->{$k}]
            if $k =~ /^\Q${name}_bucket{$label,\Ele="([^"]+)"\}$/;
    }
    @le = sort { ($a->[0] eq '+Inf' ? 1e9 : $a->[0])
                 <=> ($b->[0] eq '+Inf' ? 1e9 : $b->[0]) } @le;

    my $ok = @le > 1 && $le[-1][0] eq '+Inf'
             && $le[-1][1] == $m->{"${name}_count{$label}"};
    for my $i (1 .. $#le) {
        $ok &&= $le[$i][1] >= $le[$i - 1][1];
    }

    Test::More::ok($ok, "$name_of - $name\{$label} is a histogram");
}


$Flows{'binds and problems are counted by endpoint, status and code'} = sub {
    my ($block, $name) = @_;

    my $b = scrape_with_token();
    my $calls = stats($block);

    my @want = (
        [bind_as('/passkey/signup', 'mu-alpha'), 200],
        [bind_as('/passkey/signup', 'mu-beta'), 200],
        [post('/passkey/signup', '['), 400],
        [$Ua->get(url('/passkey/signup')), 405],
        [bind_as('/passkey/bind', 'mu-gamma', 'X-User' => 'mu-gamma'), 200],
        [bind_as('/passkey/bind', 'mu-delta'), 401],
    );

    for my $i (0 .. $#want) {
        Test::More::is($want[$i][0]{status}, $want[$i][1],
                       "$name - request $i: $want[$i][1]");
    }

    my ($a, $res) = scrape_after($b, 6);
    my $was = stats($block);

    my %requests = (
        'endpoint="signup",status="200"' => 2,
        'endpoint="signup",status="400"' => 1,
        'endpoint="signup",status="405"' => 1,
        'endpoint="bind",status="200"' => 1,
        'endpoint="bind",status="401"' => 1,
    );

    deltas_are($b, $a, 'passkey_requests_total', \%requests, $name);

    Test::More::is(delta_sum($b, $a, qr/^passkey_requests_total/), 6,
                   "$name - six requests in all");

    my %problems = (
        'endpoint="signup",code="invalid_json"' => 1,
        'endpoint="signup",code="method_not_allowed"' => 1,
        'endpoint="bind",code="unauthenticated"' => 1,
    );

    deltas_are($b, $a, 'passkey_problems_total', \%problems, $name);

    Test::More::is(delta_sum($b, $a, qr/^passkey_problems_total/), 3,
                   "$name - three problems in all");

    # each API call the stand-in saw, and no other
    for my $route (qw(list_identities create_identity create_job)) {
        my $n = $was->{$route} - $calls->{$route};
        Test::More::ok($n > 0, "$name - the stand-in saw $route");
        Test::More::is(
            delta_sum($b, $a, qr/^passkey_api_calls_total\{route="$route",/),
            $n, "$name - $n API calls $route");
        Test::More::is(
            delta($b, $a, "passkey_api_calls_total{route=\"$route\","
                          . "status=\"200\"}"),
            $n, "$name - all $route calls answered 200");
        Test::More::is(
            delta($b, $a, "passkey_api_call_duration_seconds_count"
                          . "{route=\"$route\"}"),
            $n, "$name - $n $route times");
        check_histogram($a, 'passkey_api_call_duration_seconds',
                        "route=\"$route\"", $name);
    }

    # under valgrind the token may come after the first scrape
    my $all = 0;
    $all += $was->{$_} - ($calls->{$_} // 0) for keys %$was;
    Test::More::is(delta_sum($b, $a, qr/^passkey_api_calls_total/), $all,
                   "$name - no other API call");

    # the token of every worker, fetched once at start
    Test::More::is($a->{'passkey_api_calls_total{route="token",status="200"}'},
                   $was->{token}, "$name - the token calls the stand-in saw");
    Test::More::is($a->{'passkey_token_refreshes_total{result="ok"}'},
                   $was->{token}, "$name - token refreshes: ok");
    Test::More::is($a->{'passkey_token_refreshes_total{result="failed"}'}, 0,
                   "$name - token refreshes: none failed");

    # three binds got past the checks: a duplicate lock and two commands
    my $redis = "server=\"127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT}\"";
    Test::More::ok(delta($b, $a, "passkey_redis_commands_total{$redis,"
                                 . "result=\"reply\"}") >= 6,
                   "$name - Redis commands with a reply");
    Test::More::is(
        delta_sum($b, $a, qr/^passkey_redis_commands_total\{$redis,/),
        delta($b, $a, "passkey_redis_command_duration_seconds_count{$redis}"),
        "$name - every Redis command has its time");
    check_histogram($a, 'passkey_redis_command_duration_seconds', $redis,
                    $name);
    Test::More::is($a->{"passkey_redis_up{$redis}"}, 1,
                   "$name - Redis is up");
    Test::More::is($a->{passkey_claims_held}, 0,
                   "$name - no claim held once the binds are done");

    # neither the users nor their ids: no label comes from a request
    Test::More::unlike($res->{content}, qr/mu-|[0-9a-f]{16}/,
                       "$name - no username or id in the metrics");
    Test::More::is($res->{headers}{'content-type'},
                   'text/plain; version=0.0.4; charset=utf-8',
                   "$name - the text format's type");
};


$Flows{'promtool accepts the metrics'} = sub {
    my ($block, $name) = @_;

    Test::More::is(bind_as('/passkey/signup', 'pt-one')->{status}, 502,
                   "$name - a bind that the API fails");
    Test::More::is(bind_as('/passkey/signup', 'pt-two')->{status}, 200,
                   "$name - a bind");
    Test::More::is(bind_as('/passkey/dead', 'pt-three')->{status}, 503,
                   "$name - a bind without Redis");
    Test::More::is($Ua->get(url('/passkey/jobs/nosuchjob'))->{status}, 404,
                   "$name - an unknown job");

    my ($m, $res) = scrape();

    Test::More::is($m->{'passkey_api_calls_total{route="create_job",'
                      . 'status="503"}'}, 1, "$name - the API's 503");
    Test::More::is($m->{'passkey_redis_up{server="127.0.0.1:1"}'}, 0,
                   "$name - the Redis that is not there is down");

    my ($fh, $file) = tempfile();
    print $fh $res->{content};
    close $fh;

    my $out = `promtool check metrics < $file 2>&1`;
    my $rc = $?;
    unlink $file;

    Test::More::is($rc, 0, "$name - promtool check metrics: exit 0");
    Test::More::is($out, '', "$name - promtool check metrics: no problem");

    # promtool's parser would take what a scrape does not: one family
    # each, its lines together, each line a sample or HELP and TYPE
    my (%seen, $family);
    my $bad = 0;
    for (split /\n/, $res->{content}) {
        if (/^# (HELP|TYPE) (\w+) /) {
            $bad++ if $1 eq 'HELP' && $seen{$2}++;
            $family = $2;
            next;
        }
        $bad++ unless /^(\w+)(\{(\w+="[^"\\\n]*",?)*\})? \d+(\.\d+)?$/
                      && index($1, $family) == 0;
    }
    Test::More::is($bad, 0, "$name - each line in its family");
};


$Flows{'two workers count into one zone'} = sub {
    my ($block, $name) = @_;
    my $port = $ENV{TEST_NGINX_REUSEPORT_PORT};

    # a kept connection to each worker
    my (%by_pid, $tries);
    while (keys %by_pid < 2 && ++$tries <= 64) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Timeout => 30)
            or die "cannot connect: $!";
        my $res = http($s, 'GET', '/pid');
        $by_pid{$res->{content}} //= $s;
    }

    my @pids = sort keys %by_pid;
    Test::More::is(scalar @pids, 2,
                   "$name - connections to two workers ($tries tries)");
    return unless @pids == 2;

    my @socks = map { $by_pid{$_} } @pids;
    my $series = 'passkey_requests_total{endpoint="signup",status="200"}';

    my @before = map { parse(http($_, 'GET', '/metrics')->{content}) }
                 @socks;

    Test::More::is($before[0]{$series} // 0, $before[1]{$series} // 0,
                   "$name - both workers see the same count");

    # three binds in one worker, two in the other
    for my $i (0 .. 4) {
        my $w = $i < 3 ? 0 : 1;
        my $res = http($socks[$w], 'POST', '/passkey/signup',
                       qq({"username":"tw-$i"}));
        Test::More::is($res->{headers}{'x-pid'}, $pids[$w],
                       "$name - bind $i served by worker $w");
        Test::More::is($res->{status}, 200, "$name - bind $i: 200");
    }

    # a request is counted as it is logged, just after its answer
    for my $w (0, 1) {
        my $n;
        for (1 .. 100) {
            my $after = parse(http($socks[$w], 'GET', '/metrics')->{content});
            $n = delta($before[$w], $after, $series);
            last if $n >= 5;
            sleep 0.05;
        }
        Test::More::is($n, 5, "$name - worker $w counts the binds of both");
    }
};


# a minimal HTTP/1.1 client on a kept connection
sub http {
    my ($sock, $method, $path, $body) = @_;

    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\n";
    if (defined $body) {
        $req .= "Content-Type: application/json\r\n"
                . "Content-Length: " . length($body) . "\r\n";
    }
    print $sock "$req\r\n", $body // '';

    return read_response($sock);
}


$Flows{'API failures are counted by how they failed'} = sub {
    my ($block, $name) = @_;

    # the faults are for the binds' calls, not the token's
    my $b = scrape_with_token();

    my @want = ([502, 'api_unreachable'], [504, 'api_timeout'],
                [502, 'api_error']);

    for my $i (0 .. $#want) {
        my $res = bind_as('/passkey/signup', "af-$i");
        Test::More::is($res->{status}, $want[$i][0],
                       "$name - bind $i: $want[$i][0]");
        Test::More::like($res->{content}, qr/"code":"$want[$i][1]"/,
                         "$name - bind $i: $want[$i][1]");
    }

    my $a = scrape_after($b, 3);

    my %calls = (
        'route="create_identity",status="unreachable"' => 1,
        'route="create_identity",status="timeout"' => 1,
        'route="create_identity",status="200"' => 1,
        'route="create_job",status="503"' => 1,
    );

    deltas_are($b, $a, 'passkey_api_calls_total', \%calls, $name);

    for my $code (map { $_->[1] } @want) {
        Test::More::is(delta($b, $a, "passkey_problems_total"
                                     . "{endpoint=\"signup\",code=\"$code\"}"),
                       1, "$name - problem $code");
    }

    Test::More::is(delta($b, $a, 'passkey_requests_total{endpoint="signup",'
                                 . 'status="502"}'), 2, "$name - two 502");
    Test::More::is(delta($b, $a, 'passkey_requests_total{endpoint="signup",'
                                 . 'status="504"}'), 1, "$name - one 504");

    # the timed-out call took passkey_api_timeout, 1 s
    my $h = 'passkey_api_call_duration_seconds_bucket{route="create_identity"';
    Test::More::is(delta($b, $a, "$h,le=\"+Inf\"}")
                   - delta($b, $a, "$h,le=\"0.5\"}"), 1,
                   "$name - one call took longer than 0.5 s");
};


# a sign-up sent on a connection of its own, its answer not read yet
sub start_signup {
    my ($user) = @_;

    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $ENV{TEST_NGINX_SERVER_PORT},
                                  Timeout => 30)
        or die "cannot connect: $!";
    my $body = qq({"username":"$user"});
    print $s "POST /passkey/signup HTTP/1.1\r\nHost: localhost\r\n"
             . "Content-Type: application/json\r\n"
             . "Content-Length: " . length($body) . "\r\n\r\n$body";

    return $s;
}

$Flows{'a request in flight holds its claim'} = sub {
    my ($block, $name) = @_;

    my $b = scrape();

    my $s = start_signup('claim-one');

    # the duplicate lock is taken before the API is asked, which waits
    my $held;
    for (1 .. 40) {
        $held = scrape()->{passkey_claims_held};
        last if $held > $b->{passkey_claims_held};
        sleep 0.05;
    }

    Test::More::is($held, $b->{passkey_claims_held} + 1,
                   "$name - one more claim while the bind waits");

    my $res = read_response($s);
    Test::More::is($res->{status}, 200, "$name - the bind: 200");

    # given up as the request ends, just after its answer
    for (1 .. 100) {
        $held = scrape()->{passkey_claims_held};
        last if $held == $b->{passkey_claims_held};
        sleep 0.05;
    }

    Test::More::is($held, $b->{passkey_claims_held},
                   "$name - the claim is given up with the request");
};


# the processes the master started
sub children_of {
    my ($parent) = @_;
    my @pids;

    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // '';
        close $fh;
        push @pids, $1
            if $line =~ /^(\d+) \(.*\) \S (\d+) / && $2 == $parent;
    }

    return @pids;
}

$Flows{'a killed worker leaves no gauge behind'} = sub {
    my ($block, $name) = @_;

    my $b = scrape();
    my $master = nginx_pid();

    my $s = start_signup('killed-one');

    # the bind holds its claim and a Redis connection while the API waits
    my $m;
    for (1 .. 60) {
        $m = scrape();
        last if $m->{passkey_claims_held} > $b->{passkey_claims_held};
        sleep 0.05;
    }

    my $conns = 'passkey_redis_connections{server="127.0.0.1:'
                . "$ENV{TEST_NGINX_REDIS_PORT}\"}";

    Test::More::is($m->{passkey_claims_held}, $b->{passkey_claims_held} + 1,
                   "$name - a claim held");
    Test::More::cmp_ok($m->{$conns}, '>=', 1, "$name - a connection open");

    my @workers = children_of($master);
    Test::More::is(scalar @workers, 2, "$name - two workers");
    kill 'KILL', @workers;
    close $s;

    # their successors take back what they counted; until one connects
    # again, no connection is open
    my $ok;
    for (1 .. 100) {
        my @now = children_of($master);
        $m = eval { scrape() };
        my %old = map { $_ => 1 } @workers;
        $ok = $m && @now == 2 && !grep { $old{$_} } @now;
        last if $ok && $m->{passkey_claims_held} == $b->{passkey_claims_held}
                && ($m->{$conns} // 0) == 0;
        sleep 0.1;
    }

    Test::More::ok($ok, "$name - the master started two workers again");
    Test::More::is($m->{passkey_claims_held}, $b->{passkey_claims_held},
                   "$name - no claim held");
    Test::More::is($m->{$conns} // 0, 0, "$name - no connection open");
};


$Flows{'Redis that is not there, or hangs'} = sub {
    my ($block, $name) = @_;

    my $b = scrape();

    Test::More::is(bind_as('/passkey/signup', 'rd-one')->{status}, 200,
                   "$name - a bind with Redis");
    Test::More::is(bind_as('/passkey/dead', 'rd-two')->{status}, 503,
                   "$name - a bind without");
    Test::More::is(bind_as('/passkey/hung', 'rd-three')->{status}, 503,
                   "$name - a bind with a Redis that hangs");

    my $a = scrape_after($b, 3);
    my $good = "server=\"127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT}\"";
    my $dead = 'server="127.0.0.1:1"';
    my $hung = "server=\"127.0.0.1:$ENV{TEST_NGINX_HUNG_PORT}\"";

    # the check, then the release of a claim it may have taken
    Test::More::ok(delta($b, $a, "passkey_redis_commands_total{$dead,"
                                 . "result=\"unavailable\"}") >= 1,
                   "$name - commands found Redis unavailable");
    Test::More::ok(delta($b, $a, "passkey_redis_commands_total{$hung,"
                                 . "result=\"timeout\"}") >= 1,
                   "$name - a command timed out");
    Test::More::is(delta_sum($b, $a, qr/^passkey_redis_commands_total\{
                                         (\Q$dead\E|\Q$hung\E),
                                         result="reply"/x), 0,
                   "$name - no reply from either");
    Test::More::is($a->{"passkey_redis_up{$dead}"}, 0, "$name - down");
    Test::More::is($a->{"passkey_redis_up{$good}"}, 1, "$name - up");

    # the timeout, passkey_redis_timeout 200ms, in its bucket
    my $h = "passkey_redis_command_duration_seconds_bucket{$hung";
    Test::More::ok(delta($b, $a, "$h,le=\"0.5\"}")
                   - delta($b, $a, "$h,le=\"0.1\"}") >= 1,
                   "$name - the timeout took 0.1 to 0.5 s");
    Test::More::is(delta($b, $a, 'passkey_problems_total{endpoint="signup",'
                                 . 'code="redis_unavailable"}'), 2,
                   "$name - two redis_unavailable");
};


$Flows{'a token the endpoint refuses'} = sub {
    my ($block, $name) = @_;

    my $res = bind_as('/passkey/signup', 'tk-one');
    Test::More::is($res->{status}, 502, "$name - no token, no bind");

    my $m = scrape();
    Test::More::ok($m->{'passkey_token_refreshes_total{result="failed"}'} >= 1,
                   "$name - failed refreshes");
    Test::More::is($m->{'passkey_token_refreshes_total{result="ok"}'}, 0,
                   "$name - no refresh went well");
    Test::More::ok($m->{'passkey_api_calls_total{route="token",'
                        . 'status="401"}'} >= 1,
                   "$name - the token endpoint's 401");
    Test::More::ok(!grep({ /^passkey_token_(age_seconds|valid)/ } keys %$m),
                   "$name - no token, no age");
};


$Flows{'the token and its age'} = sub {
    my ($block, $name) = @_;

    my $m = scrape_with_token();
    my $l = '{token="0",client_id="passkey-client"}';

    Test::More::is($m->{"passkey_token_valid$l"}, 1, "$name - valid");
    Test::More::ok(defined $m->{"passkey_token_age_seconds$l"}
                   && $m->{"passkey_token_age_seconds$l"} < 30,
                   "$name - fetched moments ago");

    sleep 1.1;

    my $later = scrape()->{"passkey_token_age_seconds$l"};
    Test::More::ok($later >= $m->{"passkey_token_age_seconds$l"} + 1,
                   "$name - a second older a second later");
};


$Flows{'job status, revoke and invoke are counted'} = sub {
    my ($block, $name) = @_;

    my $b = scrape_with_token();
    my $calls = stats($block);

    my $res = bind_as('/passkey/signup', 'js-one');
    my ($job) = $res->{content} =~ /"job_id":"([^"]+)"/;
    Test::More::ok($job, "$name - a job");

    Test::More::is($Ua->get(url("/passkey/jobs/$job"))->{status}, 200,
                   "$name - its status");
    Test::More::is($Ua->post(url("/passkey/jobs/$job:revoke"))->{status}, 200,
                   "$name - revoked");
    Test::More::is($Ua->get(url('/passkey/jobs/nosuchjob'))->{status}, 404,
                   "$name - an unknown job");
    Test::More::is($Ua->get(url('/app/bind'),
                            { headers => { Accept => 'application/json' } })
                   ->{status}, 400, "$name - a /bind URL without arguments");

    my $a = scrape_after($b, 5);
    my $was = stats($block);

    my %requests = (
        'endpoint="job_status",status="200"' => 1,
        'endpoint="job_status",status="404"' => 1,
        'endpoint="job_revoke",status="200"' => 1,
        'endpoint="invoke",status="400"' => 1,
    );

    deltas_are($b, $a, 'passkey_requests_total', \%requests, $name);

    Test::More::is(delta($b, $a, 'passkey_problems_total{endpoint='
                                 . '"job_status",code="unknown_job"}'), 1,
                   "$name - unknown_job");
    Test::More::is(delta($b, $a, 'passkey_problems_total{endpoint="invoke",'
                                 . 'code="invalid_link"}'), 1,
                   "$name - invalid_link");

    for my $route (qw(get_job revoke_job)) {
        my $n = $was->{$route} - $calls->{$route};
        Test::More::ok($n > 0, "$name - the stand-in saw $route");
        Test::More::is(
            delta_sum($b, $a, qr/^passkey_api_calls_total\{route="$route",/),
            $n, "$name - $n API calls $route");
    }
};


$Flows{'metrics alone'} = sub {
    my ($block, $name) = @_;

    my ($m, $res) = scrape();

    Test::More::is($m->{passkey_claims_held}, 0, "$name - no claim");
    Test::More::is($m->{'passkey_token_refreshes_total{result="ok"}'}, 0,
                   "$name - no token");

    my ($fh, $file) = tempfile();
    print $fh $res->{content};
    close $fh;
    my $out = `promtool check metrics < $file 2>&1`;
    Test::More::is("$?:$out", '0:', "$name - promtool check metrics");
    unlink $file;

    Test::More::is($Ua->post(url('/metrics'))->{status}, 405,
                   "$name - POST: 405");
    Test::More::is($Ua->head(url('/metrics'))->{status}, 200,
                   "$name - HEAD: 200");
};


# reloads nginx with its configuration changed by $edit, and waits for
# the new workers: until GET $path answers $status
sub reload {
    my ($edit, $path, $status) = @_;

    return reload_nginx($edit,
                        sub { $Ua->get(url($path))->{status} == $status });
}


$Flows{'the counts go on over a reload'} = sub {
    my ($block, $name) = @_;
    my $series = 'passkey_requests_total{endpoint="signup",status="200"}';

    Test::More::is(bind_as('/passkey/signup', 'rl-one')->{status}, 200,
                   "$name - a bind");
    my $b = scrape_after({}, 1);

    # the same configuration, and a location more: the zone is kept
    Test::More::ok(reload(sub { $_[0] =~ s{(location = /ready \{)}
                                            {location = /reloaded {
        return 200 "reloaded\\n";
    }
    $1}r }, '/reloaded', 200),
                   "$name - reloaded");

    Test::More::is(bind_as('/passkey/signup', 'rl-two')->{status}, 200,
                   "$name - a bind after the reload");
    Test::More::is(delta($b, scalar scrape_after($b, 1), $series), 1,
                   "$name - counted on from the count before");

    # a second Redis server: a zone of the same size, laid out anew
    Test::More::ok(reload(sub { $_[0] =~ s{(location = /ready \{)}
                                            {location = /passkey/dead {
        passkey_redis 127.0.0.1:1;
        passkey_bind;
    }
    $1}r }, '/passkey/dead', 405),
                   "$name - reloaded with another Redis server");

    Test::More::is(bind_as('/passkey/dead', 'rl-three')->{status}, 503,
                   "$name - a bind there");
    Test::More::is(bind_as('/passkey/signup', 'rl-four')->{status}, 200,
                   "$name - and one with the first server");

    my $m;
    for (1 .. 100) {
        $m = scrape();
        last if $m->{'passkey_requests_total{endpoint="signup",'
                     . 'status="503"}'};
        sleep 0.05;
    }

    Test::More::is($m->{'passkey_requests_total{endpoint="signup",'
                        . 'status="503"}'}, 1, "$name - counted");
    Test::More::is($m->{'passkey_redis_up{server="127.0.0.1:1"}'}, 0,
                   "$name - the new server is down");
    Test::More::is($m->{"passkey_redis_up{server=\"127.0.0.1:"
                        . "$ENV{TEST_NGINX_REDIS_PORT}\"}"}, 1,
                   "$name - the first one up");
};


run_tests();

__DATA__

=== TEST 1: binds and problems are counted by endpoint, status and code
--- config
    location = /passkey/signup {
        passkey_bind;
    }
    location = /passkey/bind {
        passkey_bind_mode authenticated;
        passkey_username $http_x_user;
        passkey_bind;
    }



=== TEST 2: promtool accepts the metrics
--- fault
{"route":"create_job","type":"status","status":503}
--- config
    location = /passkey/signup {
        passkey_bind;
    }
    location = /passkey/dead {
        passkey_redis 127.0.0.1:1;
        passkey_bind;
    }
    location /passkey/jobs/ {
        passkey_job_status;
    }



=== TEST 3: two workers count into one zone
--- config
    listen 127.0.0.1:$TEST_NGINX_REUSEPORT_PORT reuseport;

    location = /passkey/signup {
        passkey_bind;
        add_header X-Pid $pid always;
    }
    location = /pid {
        return 200 $pid;
    }



=== TEST 4: API failures are counted by how they failed
--- http_config
    passkey_api_timeout 1s;
--- fault
{"route":"create_identity","type":"reset"}
{"route":"create_identity","type":"delay","delay_ms":3000}
{"route":"create_job","type":"status","status":503}
--- config
    location = /passkey/signup {
        passkey_bind;
    }



=== TEST 5: a request in flight holds its claim
--- fault
{"route":"create_identity","type":"delay","delay_ms":1000}
--- config
    location = /passkey/signup {
        passkey_bind;
    }



=== TEST 6: Redis that is not there, or hangs
--- config
    location = /passkey/signup {
        passkey_bind;
    }
    location = /passkey/dead {
        passkey_redis 127.0.0.1:1;
        passkey_bind;
    }
    location = /passkey/hung {
        passkey_redis 127.0.0.1:$TEST_NGINX_HUNG_PORT;
        passkey_redis_timeout 200ms;
        passkey_bind;
    }



=== TEST 7: a token the endpoint refuses
--- fault
{"route":"token","type":"status","status":401,"count":0}
--- config
    location = /passkey/signup {
        passkey_bind;
    }



=== TEST 8: the token and its age
--- config
    location = /passkey/signup {
        passkey_bind;
    }



=== TEST 9: job status, revoke and invoke are counted
--- http_config
    passkey_job_refresh_interval 0;
--- config
    location = /passkey/signup {
        passkey_bind;
    }
    location /passkey/jobs/ {
        passkey_job_status;
    }
    location ~ ^/passkey/jobs/[^/]+:revoke$ {
        passkey_job_revoke;
    }
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BI_PORT/__fake/health;
    }



=== TEST 10: metrics alone
--- http_config
    # passkey: no defaults



=== TEST 11: passkey_metrics is a handler of its own
--- config
    location = /passkey/signup {
        passkey_bind;
        passkey_metrics;
    }
--- must_die
--- error_log
"passkey_bind" cannot be combined with another passkey handler in one location



=== TEST 12: one passkey handler per location
--- config
    location /passkey/jobs/ {
        passkey_job_status;
        passkey_metrics;
    }
--- must_die
--- error_log
only one passkey handler may be used in a location



=== TEST 13: passkey_metrics once
--- config
    location = /metrics2 {
        passkey_metrics;
        passkey_metrics;
    }
--- must_die
--- error_log
"passkey_metrics" directive is duplicate



=== TEST 14: passkey_metrics in a location only
--- http_config
    passkey_metrics;
--- must_die
--- error_log
"passkey_metrics" directive is not allowed here



=== TEST 15: the counts go on over a reload
--- config
    location = /passkey/signup {
        passkey_bind;
    }
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 16: a killed worker leaves no gauge behind
--- fault
{"route":"create_identity","type":"delay","delay_ms":3000}
--- config
    location = /passkey/signup {
        passkey_bind;
    }
--- error_log
passkey: took back the claims and Redis connections that a worker
