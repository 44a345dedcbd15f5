# passkey_limit: token buckets in Redis per username, email recipient,
# client address or any key of variables.  A burst passes, then 429
# rate_limited with Retry-After and RateLimit-* headers, and the refused
# request never reaches the API.  Buckets are shared by locations with the
# same limit and by workers, skipped for an empty key, and refill with
# time.  Bad parameters stop nginx -t; a Redis outage follows
# passkey_redis_down.
#
# nginx runs a master and two workers, so every block's requests may be
# served by either worker; one flow makes sure both serve a bucket.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use IO::Socket::INET;
use HTTP::Tiny;

master_on();
workers(2);

repeat_each(1);
no_shuffle();

# a free port for the "reuseport" listener of the two-workers block: each
# worker gets a socket of its own there, and the kernel spreads new
# connections over them
{
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1:0')
        or die "cannot find a free port: $!";
    $ENV{TEST_NGINX_REUSEPORT_PORT} = $s->sockport;
    close $s;
}

our %Flows;

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('more_headers', 'Content-Type: application/json')
        unless defined $block->more_headers;

    $block->set_value('config', ($block->config // '') . <<'CONF');
    location = /ready {
        return 200 "ready\n";
    }
CONF
});

run_flows(\%Flows);

sub bind_req {
    my ($user, %opt) = @_;
    my $loc = $opt{location} // '/passkey/bind';
    my $json = qq({"username":"$user");
    $json .= qq(,"email":"$opt{email}") if defined $opt{email};
    $json .= qq(,"display_name":"$opt{display_name}")
        if defined $opt{display_name};
    return "POST $loc\n$json}";
}

# N seconds, rounded up, counted from an earlier request of the block: a
# pattern for response_headers_like that allows N - 1 (N - 5 under
# valgrind), as the requests in between take some time
sub secs {
    my ($s) = @_;
    my $slack = $ENV{TEST_NGINX_USE_VALGRIND} ? 5 : 1;
    return '(?:' . join('|', map { $s - $_ } grep { $s - $_ > 0 }
                                               0 .. $slack) . ')';
}

# the RateLimit-* headers of an answer, as response_headers_like lines
sub rl {
    my ($limit, $remaining, $reset, $retry) = @_;
    my $h = "RateLimit-Limit: $limit\n"
            . "RateLimit-Remaining: $remaining\n"
            . "RateLimit-Reset: " . secs($reset) . "\n";
    $h .= "Retry-After: " . (defined $retry ? secs($retry) : '') . "\n";
    return $h;
}

sub no_rl {
    return "RateLimit-Limit: \nRateLimit-Remaining: \nRateLimit-Reset: \n"
           . "Retry-After: \n";
}

# the whole 429 problem, up to its request_id
our $Limited = qr/^\{"type":"urn:ngx-passkey:problem:rate_limited",
                  "title":"Too\ Many\ Requests","status":429,
                  "detail":"too\ many\ requests;\ see\ Retry-After",
                  "code":"rate_limited","request_id":"\w+"\}\n?$/x;


# A minimal HTTP/1.1 client on a connection of its own, which it keeps:
# requests on one object go to the worker that accepted its connection.
sub conn {
    my (%opt) = @_;
    my $sock = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $opt{port} // $ENV{TEST_NGINX_SERVER_PORT},
        ($opt{from} ? (LocalAddr => $opt{from}) : ()),
        Timeout  => 30,
    ) or die "cannot connect to nginx: $!";
    return $sock;
}

sub http {
    my ($sock, $method, $path, $body, %headers) = @_;

    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\n";
    $req .= "$_: $headers{$_}\r\n" for sort keys %headers;
    if (defined $body) {
        $req .= "Content-Type: application/json\r\n"
                . "Content-Length: " . length($body) . "\r\n";
    }
    print $sock "$req\r\n", $body // '';

    return read_response($sock);
}


sub bind_on {
    my ($sock, $user) = @_;
    return http($sock, 'POST', '/passkey/bind', qq({"username":"$user"}));
}


$Flows{'two workers count in one bucket'} = sub {
    my ($block, $name) = @_;
    my $port = $ENV{TEST_NGINX_REUSEPORT_PORT};

    # one kept connection to each worker
    my (%by_pid, $tries);
    while (keys %by_pid < 2 && ++$tries <= 64) {
        my $s = conn(port => $port);
        my $res = http($s, 'GET', '/pid');
        $by_pid{$res->{content}} //= $s;
    }

    my @pids = sort keys %by_pid;
    Test::More::is(scalar @pids, 2,
                   "$name - connections to two workers ($tries tries)");
    return unless @pids == 2;

    my @socks = map { $by_pid{$_} } @pids;

    # the limit: 3 at once; they alternate between the workers
    my @want = ([200, 2], [200, 1], [200, 0], [429, 0], [429, 0]);

    for my $i (0 .. $#want) {
        my $w = $i % 2;
        my $res = bind_on($socks[$w], "w$i");
        my ($status, $remaining) = @{ $want[$i] };

        Test::More::is($res->{headers}{'x-pid'}, $pids[$w],
                       "$name - request $i served by worker $w");
        Test::More::is($res->{status}, $status, "$name - request $i: $status");
        Test::More::is($res->{headers}{'ratelimit-remaining'}, $remaining,
                       "$name - request $i: RateLimit-Remaining $remaining");
    }

    my $stats = HTTP::Tiny->new(timeout => 10)->get(
        "http://127.0.0.1:$ENV{TEST_NGINX_BI_PORT}/__fake/stats?tenant="
        . block_tenant($block->seq_num))->{content};
    Test::More::like($stats, qr/"create_identity":3,"create_job":3,/,
                     "$name - three binds reached the API");
};


$Flows{'a client address has a bucket of its own'} = sub {
    my ($block, $name) = @_;

    my $one = conn();
    my $two = conn(from => '127.0.0.2');

    my $res = bind_on($one, "a1");
    Test::More::is($res->{status}, 200, "$name - 127.0.0.1: 200");
    Test::More::is($res->{headers}{'ratelimit-remaining'}, 0,
                   "$name - 127.0.0.1: nothing left");

    $res = bind_on($one, "a2");
    Test::More::is($res->{status}, 429, "$name - 127.0.0.1 again: 429");

    $res = bind_on($two, "a3");
    Test::More::is($res->{status}, 200, "$name - 127.0.0.2: 200");
    Test::More::is($res->{headers}{'ratelimit-remaining'}, 0,
                   "$name - 127.0.0.2: its own bucket");

    $res = bind_on($two, "a4");
    Test::More::is($res->{status}, 429, "$name - 127.0.0.2 again: 429");

    # one bucket each in Redis, named by a digest (no address in clear),
    # holding a time in ms, and gone once it would be full again
    my $prefix = block_prefix($block->seq_num);
    my @all = @{ redis_cmd('KEYS', "$prefix*") };
    my @keys = grep { /^\Q$prefix\Elimit:/ } @all;
    Test::More::is(scalar @keys, 2, "$name - two limit keys")
        or Test::More::diag("@all");

    for my $key (@keys) {
        Test::More::like($key, qr/^\Q$prefix\Elimit:[0-9a-f]{64}$/,
                         "$name - $key: limit:<sha256>");
        Test::More::like(redis_cmd('GET', $key), qr/^\d{13,}$/,
                         "$name - $key: a time in ms");
        my $pttl = redis_cmd('PTTL', $key);
        Test::More::ok($pttl > 3500000 && $pttl <= 3600000,
                       "$name - $key: expires when full (PTTL $pttl)");
    }
};

run_tests();

__DATA__

=== TEST 1: per client address: a burst, then 429 without an API call
--- config
    location = /passkey/bind {
        passkey_limit $binary_remote_addr rate=1/h burst=3;
        passkey_bind;
    }
--- request eval
[map({ main::bind_req("c$_") } 1 .. 4), "GET /fake/stats"]
--- error_code eval
[200, 200, 200, 429, 200]
--- response_headers_like eval
[main::rl(3, 2, 3600), main::rl(3, 1, 7200), main::rl(3, 0, 10800),
 main::rl(3, 0, 10800, 3600), ""]
--- response_body_like eval
[(qr/"job_id"/) x 3, $main::Limited,
 qr/"create_identity":3,"create_job":3,.*"list_identities":0,/]
--- block_error_log
passkey: rate limit "$binary_remote_addr 1/3600000 3" reached



=== TEST 2: a client address has a bucket of its own
--- config
    location = /passkey/bind {
        passkey_limit $binary_remote_addr rate=1/h;
        passkey_bind;
    }
--- request
GET /ready
--- response_body
ready
--- no_error_log
[alert]



=== TEST 3: per username
--- config
    location = /passkey/bind {
        passkey_limit $passkey_username rate=2/h;
        passkey_bind;
    }
--- request eval
[main::bind_req("alice", display_name => "one"),
 main::bind_req("alice", display_name => "two"),
 main::bind_req("alice", display_name => "three"),
 main::bind_req("bob"),
 "GET /fake/stats"]
--- error_code eval
[200, 202, 429, 200, 200]
--- response_headers_like eval
[main::rl(2, 1, 1800), main::rl(2, 0, 3600), main::rl(2, 0, 3600, 1800),
 main::rl(2, 1, 1800), ""]
--- response_body_like eval
[qr/"job_id"/, qr/^\{"state":"accepted","delivery_method":"EMAIL"\}$/,
 $main::Limited, qr/"job_id"/,
 qr/"create_identity":3,"create_job":2,/]
--- block_error_log
passkey: rate limit "$passkey_username 2/3600000 2" reached



=== TEST 4: per email recipient; no email, no limit
--- config
    location = /passkey/bind {
        passkey_limit $passkey_email rate=2/h;
        passkey_bind;
    }
--- request eval
[main::bind_req("e1", email => 'a@example.com'),
 main::bind_req("e2", email => 'a@example.com'),
 main::bind_req("e3", email => 'a@example.com'),
 main::bind_req("e4", email => 'b@example.com'),
 main::bind_req("e5"),
 main::bind_req("e6"),
 main::bind_req("e7"),
 "GET /fake/stats"]
--- error_code eval
[200, 200, 429, 200, 200, 200, 200, 200]
--- response_headers_like eval
[main::rl(2, 1, 1800), main::rl(2, 0, 3600), main::rl(2, 0, 3600, 1800),
 main::rl(2, 1, 1800), main::no_rl(), main::no_rl(), main::no_rl(), ""]
--- response_body_like eval
[qr/"job_id"/, qr/"job_id"/, $main::Limited, (qr/"job_id"/) x 4,
 qr/"create_identity":6,"create_job":6,/]
--- block_error_log
passkey: rate limit "$passkey_email 2/3600000 2" reached



=== TEST 5: a key of several variables
--- config
    location = /passkey/bind {
        passkey_limit "$binary_remote_addr:$http_x_tenant" rate=1/h;
        passkey_bind;
    }
--- more_headers eval
["Content-Type: application/json\nX-Tenant: a",
 "Content-Type: application/json\nX-Tenant: a",
 "Content-Type: application/json\nX-Tenant: b",
 "Content-Type: application/json",
 "Content-Type: application/json",
 ""]
--- request eval
[map({ main::bind_req("k$_") } 1 .. 5), "GET /fake/stats"]
--- error_code eval
[200, 429, 200, 200, 429, 200]
--- response_headers_like eval
[main::rl(1, 0, 3600), main::rl(1, 0, 3600, 3600), main::rl(1, 0, 3600),
 main::rl(1, 0, 3600), main::rl(1, 0, 3600, 3600), ""]
--- response_body_like eval
[qr/"job_id"/, $main::Limited, qr/"job_id"/, qr/"job_id"/, $main::Limited,
 qr/"create_identity":3,"create_job":3,/]



=== TEST 6: several limits: the tightest in the headers, all or none charged
--- config
    location = /passkey/bind {
        passkey_limit $binary_remote_addr rate=3/h;
        passkey_limit $passkey_username rate=1/h;
        passkey_bind;
    }
--- request eval
[main::bind_req("t1"),
 main::bind_req("t1", display_name => "again"),
 main::bind_req("t2"),
 main::bind_req("t3"),
 main::bind_req("t4"),
 "GET /fake/stats"]
--- error_code eval
[200, 429, 200, 200, 429, 200]
--- response_headers_like eval
[main::rl(1, 0, 3600),
 main::rl(1, 0, 3600, 3600),
 main::rl(1, 0, 3600),
 main::rl(3, 0, 3600),
 main::rl(3, 0, 3600, 1200),
 ""]
--- response_body_like eval
[qr/"job_id"/, $main::Limited, qr/"job_id"/, qr/"job_id"/, $main::Limited,
 qr/"create_identity":3,"create_job":3,/]
--- block_error_log
passkey: rate limit "$passkey_username 1/3600000 1" reached
passkey: rate limit "$binary_remote_addr 3/3600000 3" reached



=== TEST 7: locations with the same limit share its buckets
--- config
    location = /a {
        passkey_limit $binary_remote_addr rate=2/h;
        passkey_bind;
    }
    location = /b {
        # the same limit: the default burst is the rate, 60m is 1h
        passkey_limit $binary_remote_addr rate=2/60m burst=2;
        passkey_bind;
    }
    location = /c {
        # another burst: another bucket
        passkey_limit $binary_remote_addr rate=2/h burst=3;
        passkey_bind;
    }
--- request eval
[main::bind_req("s1", location => "/a"),
 main::bind_req("s2", location => "/b"),
 main::bind_req("s3", location => "/a"),
 main::bind_req("s4", location => "/b"),
 main::bind_req("s5", location => "/c"),
 "GET /fake/stats"]
--- error_code eval
[200, 200, 429, 429, 200, 200]
--- response_headers_like eval
[main::rl(2, 1, 1800), main::rl(2, 0, 3600), main::rl(2, 0, 3600, 1800),
 main::rl(2, 0, 3600, 1800), main::rl(3, 2, 1800), ""]
--- response_body_like eval
[qr/"job_id"/, qr/"job_id"/, $main::Limited, $main::Limited, qr/"job_id"/,
 qr/"create_identity":3,"create_job":3,/]



=== TEST 8: a location with limits of its own does not inherit them
--- config
    passkey_limit $binary_remote_addr rate=1/h;

    location = /inherits {
        passkey_bind;
    }
    location = /own {
        passkey_limit $binary_remote_addr rate=5/h;
        passkey_bind;
    }
--- request eval
[main::bind_req("i1", location => "/inherits"),
 main::bind_req("i2", location => "/inherits"),
 main::bind_req("i3", location => "/own"),
 main::bind_req("i4", location => "/own"),
 "GET /fake/stats"]
--- error_code eval
[200, 429, 200, 200, 200]
--- response_headers_like eval
[main::rl(1, 0, 3600), main::rl(1, 0, 3600, 3600), main::rl(5, 4, 720),
 main::rl(5, 3, 1440), ""]
--- response_body_like eval
[qr/"job_id"/, $main::Limited, qr/"job_id"/, qr/"job_id"/,
 qr/"create_identity":3,"create_job":3,/]



=== TEST 9: two workers count in one bucket
--- config
    listen 127.0.0.1:$TEST_NGINX_REUSEPORT_PORT reuseport;

    location = /passkey/bind {
        passkey_limit $binary_remote_addr rate=1/h burst=3;
        passkey_bind;
        add_header X-Pid $pid always;
    }
    location = /pid {
        return 200 $pid;
    }
--- request
GET /ready
--- response_body
ready
--- no_error_log
[alert]



=== TEST 10: a bucket refills after its interval
--- config
    location = /passkey/bind {
        passkey_limit $binary_remote_addr rate=1/1s;
        passkey_bind;
    }
--- request eval
[main::bind_req("f1"), main::bind_req("f2"), "GET /fake/sleep?ms=1100",
 main::bind_req("f3"), "GET /fake/stats"]
--- error_code eval
[200, 429, 200, 200, 200]
--- response_headers_like eval
[main::rl(1, 0, 1), main::rl(1, 0, 1, 1), "", main::rl(1, 0, 1), ""]
--- response_body_like eval
[qr/"job_id"/, $main::Limited, qr/slept/, qr/"job_id"/,
 qr/"create_identity":2,"create_job":2,/]



=== TEST 11: Redis down: refuse answers 503, allow goes on without limits
--- config
    location = /refuse {
        passkey_redis 127.0.0.1:1;
        passkey_limit $binary_remote_addr rate=1/h;
        passkey_bind;
    }
    location = /allow {
        passkey_redis 127.0.0.1:1;
        passkey_redis_down allow;
        passkey_limit $binary_remote_addr rate=1/h;
        passkey_bind;
    }
--- request eval
[main::bind_req("d1", location => "/refuse"), "GET /fake/stats",
 main::bind_req("d2", location => "/allow"),
 main::bind_req("d3", location => "/allow"),
 "GET /fake/stats"]
--- error_code eval
[503, 200, 200, 200, 200]
--- response_headers_like eval
[main::no_rl(), "", main::no_rl(), main::no_rl(), ""]
--- response_body_like eval
[qr/^\{"type":"urn:ngx-passkey:problem:redis_unavailable","title":"Service Unavailable","status":503,"detail":"job storage is unavailable","code":"redis_unavailable"/,
 qr/"create_identity":0,"create_job":0,/,
 qr/"job_id"/, qr/"job_id"/,
 qr/"create_identity":2,"create_job":2,/]
--- block_error_log eval
[qr/passkey: redis "127\.0\.0\.1:1" [^,\n]+, client/,
 qr/passkey: redis "127\.0\.0\.1:1" [^,\n]+, going on without rate limits and idempotency \(passkey_redis_down allow\)/]



=== TEST 12: passkey_limit without a rate
--- config
    location = /passkey/bind {
        passkey_limit $binary_remote_addr burst=5;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_limit" needs a rate, such as rate=5/m



=== TEST 13: passkey_limit with a rate of 0
--- config
    location = /passkey/bind {
        passkey_limit $binary_remote_addr rate=0/m;
        passkey_bind;
    }
--- must_die
--- error_log
invalid parameter "rate=0/m" in "passkey_limit": expected rate=N/period (such as 5/m, 20/1h) and burst=N



=== TEST 14: passkey_limit with a burst that is not a number
--- config
    location = /passkey/bind {
        passkey_limit $binary_remote_addr rate=5/m burst=x;
        passkey_bind;
    }
--- must_die
--- error_log
invalid parameter "burst=x" in "passkey_limit"



=== TEST 15: passkey_limit with an unknown parameter
--- config
    location = /passkey/bind {
        passkey_limit $binary_remote_addr rate=5/m nodelay;
        passkey_bind;
    }
--- must_die
--- error_log
invalid parameter "nodelay" in "passkey_limit"



=== TEST 16: passkey_limit with a period that is not a time
--- config
    location = /passkey/bind {
        passkey_limit $binary_remote_addr rate=5/fortnight;
        passkey_bind;
    }
--- must_die
--- error_log
invalid parameter "rate=5/fortnight" in "passkey_limit"



=== TEST 17: more than 8 limits in one place
--- config
    location = /passkey/bind {
        passkey_limit $binary_remote_addr:1 rate=5/m;
        passkey_limit $binary_remote_addr:2 rate=5/m;
        passkey_limit $binary_remote_addr:3 rate=5/m;
        passkey_limit $binary_remote_addr:4 rate=5/m;
        passkey_limit $binary_remote_addr:5 rate=5/m;
        passkey_limit $binary_remote_addr:6 rate=5/m;
        passkey_limit $binary_remote_addr:7 rate=5/m;
        passkey_limit $binary_remote_addr:8 rate=5/m;
        passkey_limit $binary_remote_addr:9 rate=5/m;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_limit" directive is used more than 8 times in one place



=== TEST 18: $passkey_client_network: an IPv6 client counts as its /64
Behind the realip module, as behind a proxy.  Addresses of one /64 share
a bucket; another /64 has its own; IPv4 addresses stay whole.
--- config
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Real-IP;

    location = /net {
        return 200 "$passkey_client_network\n";
    }

    location = /passkey/bind {
        passkey_limit $passkey_client_network rate=2/h;
        passkey_bind;
    }
--- request eval
["GET /net", "GET /net", "GET /net", "GET /net", "GET /net",
 map({ main::bind_req("net$_") } 1 .. 5)]
--- more_headers eval
[map({ $_ eq '' ? '' : "X-Real-IP: $_" }
     '2001:db8:1:2:3:4:5:6', '2001:DB8:1:2::', '::ffff:192.0.2.1',
     '192.0.2.7', ''),
 map({ "Content-Type: application/json\r\nX-Real-IP: $_" }
     '2001:db8:1:2::1', '2001:db8:1:2:ffff::9', '2001:db8:1:2::77',
     '2001:db8:1:3::1', '192.0.2.7')]
--- error_code eval
[200, 200, 200, 200, 200, 200, 200, 429, 200, 200]
--- response_body_like eval
["^2001:db8:1:2::/64\n\$", "^2001:db8:1:2::/64\n\$", "^192\\.0\\.2\\.1\n\$",
 "^192\\.0\\.2\\.7\n\$", "^127\\.0\\.0\\.1\n\$",
 qr/"job_id"/, qr/"job_id"/, $main::Limited, qr/"job_id"/, qr/"job_id"/]
