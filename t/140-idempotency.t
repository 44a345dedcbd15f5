# Idempotency-Key and the duplicate lock: a retry with the same key gets
# the first answer byte for byte with "Idempotent-Replayed: true" and no
# second job; the same key with another body is 422, a malformed key 400;
# a double click makes one job (409 request_in_progress with a key,
# duplicate_request without one); a failure releases the claim; what
# Redis keeps shows no binding link; passkey_idempotency off and
# passkey_duplicate_window off turn each off; with Redis down and
# passkey_redis_down allow the bind still answers.
#
# Flows that compare answers with each other, or send two requests at
# once, are Perl code run after the block's request ("GET /ready").

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use IO::Socket::INET;
use HTTP::Tiny;

repeat_each(1);
no_shuffle();

our %Flows;

our $Key = 'Key-0123456789abcdef';

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('more_headers', 'Content-Type: application/json')
        unless defined $block->more_headers;

    my $config = $block->config // '';

    $config .= <<'CONF' unless $config =~ m{location = /passkey/bind };
    location = /passkey/bind {
        passkey_bind;
    }
CONF

    $block->set_value('config', $config . <<'CONF');
    location = /ready {
        return 200 "ready\n";
    }
CONF
});

run_flows(\%Flows);

sub bind_req {
    my ($user, $loc) = @_;
    $loc //= '/passkey/bind';
    return "POST $loc\n{\"username\":\"$user\"}";
}

sub with_key {
    my ($key) = @_;
    return "Content-Type: application/json\nIdempotency-Key: $key";
}

sub problem {
    my ($status, $title, $code) = @_;
    $title = quotemeta $title;
    return qr/^\{"type":"urn:ngx-passkey:problem:$code","title":"$title",
               "status":$status,"detail":"[^"]+","code":"$code",
               "request_id":"\w+"\}\n?$/x;
}


# A minimal HTTP/1.1 client: the answer as it came, byte for byte, and
# requests on connections of their own that may overlap.
sub conn {
    my (%opt) = @_;
    my $sock = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $ENV{TEST_NGINX_SERVER_PORT},
        ($opt{from} ? (LocalAddr => $opt{from}) : ()),
        Timeout  => 30,
    ) or die "cannot connect to nginx: $!";
    return $sock;
}

sub send_req {
    my ($sock, $method, $path, $body, %headers) = @_;

    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\n";
    $req .= "$_: $headers{$_}\r\n" for sort keys %headers;
    if (defined $body) {
        $req .= "Content-Type: application/json\r\n"
                . "Content-Length: " . length($body) . "\r\n";
    }
    print $sock "$req\r\n", $body // '';
}


# one bind on a connection of its own
sub bind_once {
    my ($user, %headers) = @_;
    my $s = conn(from => delete $headers{from});
    send_req($s, 'POST', '/passkey/bind', qq({"username":"$user"}), %headers);
    my $res = read_response($s);
    close $s;
    return $res;
}

# two identical binds at once: both sent before either is answered
sub double_click {
    my ($user, %headers) = @_;
    my @socks = (conn(), conn());
    send_req($_, 'POST', '/passkey/bind', qq({"username":"$user"}), %headers)
        for @socks;
    my @res = map { read_response($_) } @socks;
    close $_ for @socks;
    return sort { $a->{status} <=> $b->{status} } @res;
}

sub stats {
    my ($block) = @_;
    my $res = HTTP::Tiny->new(timeout => 10)->get(
        "http://127.0.0.1:$ENV{TEST_NGINX_BI_PORT}/__fake/stats?tenant="
        . block_tenant($block->seq_num));
    my %stats = $res->{content} =~ /"(\w+)":(\d+)/g;
    return \%stats;
}

# every key of the block in Redis, and what it holds
sub redis_dump {
    my ($block) = @_;
    my %dump;

    for my $key (@{ redis_cmd('KEYS', block_prefix($block->seq_num) . '*') }) {
        my $type = redis_cmd('TYPE', $key);
        $dump{$key} = $type eq 'hash'   ? { @{ redis_cmd('HGETALL', $key) } }
                    : $type eq 'string' ? redis_cmd('GET', $key)
                    : "<$type>";
    }

    return \%dump;
}


# The job's POST went out, then the client left: the bind finishes, keeps
# its answer, and the retry with the same key gets it, not a second job.
$Flows{'a client that leaves after the job POST: the retry gets the answer'}
= sub {
    my ($block, $name) = @_;
    my $key = "$Key-gone";

    my $s = conn();
    send_req($s, 'POST', '/passkey/bind', '{"username":"gone1"}',
             'Idempotency-Key' => $key);
    select undef, undef, undef, 0.5;    # the job's POST waits at the API
    close $s;

    select undef, undef, undef, 1.5;    # the API answers, nobody listens

    my $res = bind_once('gone1', 'Idempotency-Key' => $key);
    Test::More::is($res->{status}, 200, "$name - the retry: 200");
    Test::More::is($res->{headers}{'idempotent-replayed'}, 'true',
                   "$name - the retry: the stored answer");
    Test::More::like($res->{content}, qr/"job_id":"\w+"/,
                     "$name - the retry: the job");

    my $stats = stats($block);
    Test::More::is($stats->{create_job}, 1, "$name - one job at the API");

    my ($job) = $res->{content} =~ /"job_id":"(\w+)"/;
    Test::More::is(redis_cmd('EXISTS',
                             block_prefix($block->seq_num) . "job:$job"),
                   1, "$name - the job is kept in redis");
};


# Redis stalls while the guard's script waits behind a slow one: the
# request gives up (503), and the claim the script still writes once
# Redis runs it is given back at once, not held for the claim's TTL.
$Flows{'a guard script that timed out gives its claim back'} = sub {
    my ($block, $name) = @_;
    my $key = "$Key-stall";

    # a script that keeps Redis busy for 0.8 s; its reply is not awaited
    my $busy = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $ENV{TEST_NGINX_REDIS_PORT},
                                     Timeout => 5)
        or die "cannot connect to redis: $!";
    my $lua = "local s = redis.call('TIME') local n repeat "
              . "n = redis.call('TIME') until (n[1] - s[1]) * 1000000 "
              . "+ (n[2] - s[2]) > 800000 return 1";
    print $busy "*3\r\n\$4\r\nEVAL\r\n\$" . length($lua) . "\r\n$lua\r\n"
                . "\$1\r\n0\r\n";
    select undef, undef, undef, 0.05;

    my $res = bind_once('stall1', 'Idempotency-Key' => $key);
    Test::More::is($res->{status}, 503, "$name - redis too slow: 503");

    my $reply = <$busy>;
    close $busy;
    select undef, undef, undef, 0.3;

    my @claims = grep { /idem:/ }
                 @{ redis_cmd('KEYS', block_prefix($block->seq_num) . '*') };
    Test::More::is(scalar @claims, 0, "$name - no claim left in redis")
        or Test::More::diag("@claims");

    $res = bind_once('stall1', 'Idempotency-Key' => $key);
    Test::More::is($res->{status}, 200, "$name - the retry at once: 200");
    Test::More::ok(!exists $res->{headers}{'idempotent-replayed'},
                   "$name - the retry ran the bind");
};


# a claim lives for the bind's deadline (6 API timeouts and 4 Redis
# timeouts) and 10 s more
$Flows{'the claim outlives the bind deadline'} = sub {
    my ($block, $name) = @_;
    my $key = "$Key-ttl";

    my $s = conn();
    send_req($s, 'POST', '/passkey/bind', '{"username":"ttl1"}',
             'Idempotency-Key' => $key);

    # the claim, once the guard made it (the bind then waits at the API,
    # 1.8 s); under valgrind on a busy machine that takes a while
    my $claim;
    for (1 .. 30) {
        ($claim) = grep { /idem:/ }
                   @{ redis_cmd('KEYS', block_prefix($block->seq_num) . '*') };
        last if $claim;
        select undef, undef, undef, 0.05;
    }

    my $pttl = $claim ? redis_cmd('PTTL', $claim) : -1;

    # 6 x 2 s + 4 x 500 ms + 10 s = 24 s
    Test::More::ok($pttl > 23000 && $pttl <= 24000,
                   "$name - the claim's TTL: $pttl ms");

    my $res = read_response($s);
    close $s;
    Test::More::is($res->{status}, 200, "$name - the bind: 200");
};


$Flows{'a retry with the same key gets the first answer'} = sub {
    my ($block, $name) = @_;

    my $first = bind_once('r1', 'Idempotency-Key' => $Key);
    Test::More::is($first->{status}, 200, "$name - first: 200");
    Test::More::like($first->{content},
                     qr/"credential_binding_link":"[^"]+token=/,
                     "$name - first: the link");
    Test::More::ok(!exists $first->{headers}{'idempotent-replayed'},
                   "$name - first: not replayed");

    for my $i (1 .. 2) {
        # the header name in any case
        my $res = bind_once('r1', ($i == 1 ? 'Idempotency-Key'
                                           : 'idempotency-key') => $Key);
        Test::More::is($res->{status}, 200, "$name - retry $i: 200");
        Test::More::is($res->{content}, $first->{content},
                       "$name - retry $i: the same body, byte for byte");
        Test::More::is($res->{headers}{'idempotent-replayed'}, 'true',
                       "$name - retry $i: Idempotent-Replayed: true");
        Test::More::is($res->{headers}{'content-type'}, 'application/json',
                       "$name - retry $i: Content-Type");
        Test::More::is($res->{headers}{'cache-control'}, 'no-store',
                       "$name - retry $i: Cache-Control");
    }

    # a 202 is kept too: the username is taken now
    my $k2 = "$Key-second";
    my $taken = bind_once('r1', 'Idempotency-Key' => $k2);
    Test::More::is($taken->{status}, 202, "$name - taken: 202");
    my $again = bind_once('r1', 'Idempotency-Key' => $k2);
    Test::More::is($again->{status}, 202, "$name - taken again: 202");
    Test::More::is($again->{content}, $taken->{content},
                   "$name - taken again: the same body");
    Test::More::is($again->{headers}{'idempotent-replayed'}, 'true',
                   "$name - taken again: Idempotent-Replayed: true");

    my $stats = stats($block);
    Test::More::is($stats->{create_identity}, 2,
                   "$name - two identity calls (r1, then r1 taken)");
    Test::More::is($stats->{create_job}, 1, "$name - one job");

    # what Redis holds: the job, the two keys; no link, token or key
    my ($link) = $first->{content} =~ /"credential_binding_link":"([^"]+)"/;
    my ($job) = $first->{content} =~ /"job_id":"(\w+)"/;
    my $prefix = block_prefix($block->seq_num);
    my $dump = redis_dump($block);

    my @idem = grep { /^\Q$prefix\Eidem:[0-9a-f]{64}$/ } keys %$dump;
    Test::More::is(scalar @idem, 2, "$name - two idem:<sha256> keys");
    Test::More::ok(exists $dump->{"${prefix}job:$job"}, "$name - the job");
    Test::More::is(scalar keys %$dump, 3, "$name - nothing else")
        or Test::More::diag(join ' ', sort keys %$dump);

    for my $k (@idem) {
        Test::More::like($dump->{$k}{status}, qr/^20[02]$/,
                         "$name - $k: status");
        Test::More::like($dump->{$k}{fp}, qr/^[0-9a-f]{64}$/,
                         "$name - $k: fingerprint");
        # ciphertext: no JSON member of the answer in clear (the check is
        # on whole members, which random bytes do not spell by chance)
        Test::More::unlike($dump->{$k}{body},
                           qr/"job_id":|"state":"accepted"/,
                           "$name - $k: the answer is sealed");
        my $ttl = redis_cmd('TTL', $k);
        Test::More::ok($ttl > 86000 && $ttl <= 86400,
                       "$name - $k: kept for passkey_idempotency (TTL $ttl)");
    }

    my $all = join "\n", keys %$dump,
                         map { ref $_ ? %$_ : $_ } values %$dump;
    Test::More::unlike($all, qr/token=|invokeAuthenticator/,
                       "$name - no \"token=\" in Redis");
    Test::More::ok(index($all, $link) < 0, "$name - no link in Redis");
    Test::More::ok(index($all, $Key) < 0,
                   "$name - no Idempotency-Key in Redis");
};


$Flows{'a double click with a key makes one job'} = sub {
    my ($block, $name) = @_;

    my ($ok, $busy) = double_click('dc1', 'Idempotency-Key' => $Key);

    Test::More::is($ok->{status}, 200, "$name - one 200");
    Test::More::like($ok->{content}, qr/"job_id"/, "$name - with the job");
    Test::More::is($busy->{status}, 409, "$name - one 409");
    Test::More::like($busy->{content}, problem(409, 'Conflict',
                                               'request_in_progress'),
                     "$name - request_in_progress");
    Test::More::like($busy->{headers}{'retry-after'} // '', qr/^[1-9]\d*$/,
                     "$name - Retry-After");

    # once it is done, the key replays it
    my $res = bind_once('dc1', 'Idempotency-Key' => $Key);
    Test::More::is($res->{status}, 200, "$name - then: 200");
    Test::More::is($res->{content}, $ok->{content},
                   "$name - then: the first answer");
    Test::More::is($res->{headers}{'idempotent-replayed'}, 'true',
                   "$name - then: replayed");

    my $stats = stats($block);
    Test::More::is($stats->{create_identity}, 1, "$name - one identity call");
    Test::More::is($stats->{create_job}, 1, "$name - one job");
};


$Flows{'a double click without a key makes one job'} = sub {
    my ($block, $name) = @_;

    my ($ok, $dup) = double_click('dc2');

    Test::More::is($ok->{status}, 200, "$name - one 200");
    Test::More::like($ok->{content}, qr/"job_id"/, "$name - with the job");
    Test::More::is($dup->{status}, 409, "$name - one 409");
    Test::More::like($dup->{content}, problem(409, 'Conflict',
                                              'duplicate_request'),
                     "$name - duplicate_request");
    Test::More::like($dup->{headers}{'retry-after'} // '', qr/^[1-5]$/,
                     "$name - Retry-After within the 5 s window");
    Test::More::unlike($dup->{content}, qr/job_id|token=/,
                       "$name - the 409 does not show the first answer");

    # the lock stays for the window, also after the first one is done
    my $res = bind_once('dc2');
    Test::More::is($res->{status}, 409, "$name - again: 409");
    Test::More::like($res->{content}, qr/"code":"duplicate_request"/,
                     "$name - again: duplicate_request");

    my $prefix = block_prefix($block->seq_num);
    my @dup = @{ redis_cmd('KEYS', "${prefix}dup:*") };
    Test::More::is(scalar @dup, 1, "$name - one dup:<sha256> key");
    Test::More::like($dup[0] // '', qr/^\Q$prefix\Edup:[0-9a-f]{64}$/,
                     "$name - named by a digest");
    my $pttl = redis_cmd('PTTL', $dup[0] // 'none');
    Test::More::ok($pttl > 0 && $pttl <= 5000,
                   "$name - it lasts the window (PTTL $pttl)");

    # the same body from another address is another request (the user
    # exists by now: sign-up answers 202)
    $res = bind_once('dc2', from => '127.0.0.2');
    Test::More::is($res->{status}, 202, "$name - from another address: 202");

    my $stats = stats($block);
    Test::More::is($stats->{create_identity}, 2,
                   "$name - two identity calls (127.0.0.1 once, 127.0.0.2)");
    Test::More::is($stats->{create_job}, 1, "$name - one job");
};

run_tests();

__DATA__

=== TEST 1: a retry with the same key gets the first answer
--- request
GET /ready
--- response_body
ready



=== TEST 2: the same key with another body: 422; per location; no charge
--- config
    location = /passkey/bind {
        passkey_limit $binary_remote_addr rate=3/h;
        passkey_bind;
    }
    location = /other {
        passkey_bind;
    }
--- more_headers eval
[main::with_key($main::Key), main::with_key($main::Key),
 main::with_key($main::Key), main::with_key($main::Key),
 "Content-Type: application/json", "Content-Type: application/json",
 main::with_key("$main::Key-2"), main::with_key("$main::Key-2"), ""]
--- request eval
[main::bind_req("m1"), main::bind_req("m2"), main::bind_req("m1"),
 main::bind_req("m3", "/other"), main::bind_req("m4"), main::bind_req("m5"),
 main::bind_req("m6"), main::bind_req("m6"), "GET /fake/stats"]
--- error_code eval
[200, 422, 200, 200, 200, 200, 429, 429, 200]
--- response_headers eval
["!Idempotent-Replayed\nRateLimit-Remaining: 2",
 "!Idempotent-Replayed\n!RateLimit-Remaining",
 "Idempotent-Replayed: true\n!RateLimit-Remaining",
 "!Idempotent-Replayed",
 "!Idempotent-Replayed\nRateLimit-Remaining: 1",
 "!Idempotent-Replayed\nRateLimit-Remaining: 0",
 "!Idempotent-Replayed\nRateLimit-Remaining: 0",
 "!Idempotent-Replayed\nRateLimit-Remaining: 0",
 ""]
--- response_body_like eval
[qr/"job_id"/,
 main::problem(422, 'Unprocessable Content', 'idempotency_key_reused'),
 qr/"job_id"/, qr/"job_id"/, qr/"job_id"/, qr/"job_id"/,
 (main::problem(429, 'Too Many Requests', 'rate_limited')) x 2,
 qr/"create_identity":4,"create_job":4,/]



=== TEST 3: a key that is not 16 to 255 visible ASCII characters: 400
--- more_headers eval
[main::with_key("a" x 15),
 main::with_key("a" x 256),
 main::with_key("abcdefgh ijklmnop"),
 main::with_key("abcdefghijklmnop\xc3\xa9"),
 main::with_key(""),
 main::with_key("a" x 16),
 main::with_key("!" . ("~" x 253) . "!"),
 ""]
--- request eval
[map({ main::bind_req("v$_") } 1 .. 7), "GET /fake/stats"]
--- error_code eval
[400, 400, 400, 400, 400, 200, 200, 200]
--- response_body_like eval
[(main::problem(400, 'Bad Request', 'invalid_idempotency_key')) x 5,
 qr/"job_id"/, qr/"job_id"/,
 qr/"create_identity":2,"create_job":2,/]



=== TEST 4: a double click with a key makes one job
--- fault
{"route":"create_identity","type":"delay","delay_ms":800}
--- request
GET /ready
--- timeout: 10
--- response_body
ready



=== TEST 5: a double click without a key makes one job
--- fault
{"route":"create_identity","type":"delay","delay_ms":800}
--- request
GET /ready
--- timeout: 10
--- response_body
ready



=== TEST 6: a failure releases the key and the duplicate lock
--- fault
{"route":"create_identity","type":"status","status":500}
--- more_headers eval
[main::with_key($main::Key), main::with_key($main::Key),
 "Content-Type: application/json", "Content-Type: application/json",
 "Content-Type: application/json", ""]
--- request eval
[main::bind_req("x1"), main::bind_req("x1"),
 qq{POST /fake/faults\n{"route":"create_identity","type":"status","status":500}},
 main::bind_req("x2"), main::bind_req("x2"),
 "GET /fake/stats"]
--- error_code eval
[502, 200, 200, 502, 200, 200]
--- response_headers eval
["!Idempotent-Replayed", "!Idempotent-Replayed", "", "", "", ""]
--- response_body_like eval
[main::problem(502, 'Bad Gateway', 'api_error'), qr/"job_id"/,
 qr/"status"/,
 main::problem(502, 'Bad Gateway', 'api_error'), qr/"job_id"/,
 qr/"create_identity":4,"create_job":2,/]



=== TEST 7: passkey_idempotency off ignores the header
--- config
    location = /passkey/bind {
        passkey_idempotency off;
        passkey_bind;
    }
--- more_headers eval
[main::with_key($main::Key), main::with_key($main::Key),
 main::with_key($main::Key), main::with_key("short"), ""]
--- request eval
[main::bind_req("o1"), main::bind_req("o2"), main::bind_req("o1"),
 main::bind_req("o3"), "GET /fake/stats"]
--- error_code eval
[200, 200, 409, 200, 200]
--- response_headers eval
["!Idempotent-Replayed", "!Idempotent-Replayed", "!Idempotent-Replayed",
 "!Idempotent-Replayed", ""]
--- response_body_like eval
[qr/"job_id"/, qr/"job_id"/,
 main::problem(409, 'Conflict', 'duplicate_request'), qr/"job_id"/,
 qr/"create_identity":3,"create_job":3,/]



=== TEST 8: passkey_duplicate_window off lets identical requests through
--- config
    location = /passkey/bind {
        passkey_duplicate_window off;
        passkey_bind;
    }
--- request eval
[main::bind_req("n1"), main::bind_req("n1"), main::bind_req("n1"),
 "GET /fake/stats"]
--- error_code eval
[200, 202, 202, 200]
--- response_body_like eval
[qr/"job_id"/, qr/^\{"state":"accepted","delivery_method":"EMAIL"\}$/,
 qr/^\{"state":"accepted","delivery_method":"EMAIL"\}$/,
 qr/"create_identity":3,"create_job":1,/]



=== TEST 9: a replay lasts passkey_idempotency
--- config
    location = /passkey/bind {
        passkey_idempotency 1s;
        passkey_bind;
    }
--- more_headers eval
[main::with_key($main::Key), main::with_key($main::Key), "",
 main::with_key($main::Key), ""]
--- request eval
[main::bind_req("e1"), main::bind_req("e1"), "GET /fake/sleep?ms=1100",
 main::bind_req("e1"), "GET /fake/stats"]
--- error_code eval
[200, 200, 200, 202, 200]
--- response_headers eval
["!Idempotent-Replayed", "Idempotent-Replayed: true", "",
 "!Idempotent-Replayed", ""]
--- response_body_like eval
[qr/"job_id"/, qr/"job_id"/, qr/slept/,
 qr/^\{"state":"accepted","delivery_method":"EMAIL"\}$/,
 qr/"create_identity":2,"create_job":1,/]



=== TEST 10: Redis down: refuse answers 503, allow answers without a replay
--- config
    location = /refuse {
        passkey_redis 127.0.0.1:1;
        passkey_bind;
    }
    location = /passkey/bind {
        passkey_redis 127.0.0.1:1;
        passkey_redis_down allow;
        passkey_bind;
    }
--- more_headers eval
[(main::with_key($main::Key)) x 3, ""]
--- request eval
[main::bind_req("z1", "/refuse"), main::bind_req("z2"),
 main::bind_req("z2"), "GET /fake/stats"]
--- error_code eval
[503, 200, 202, 200]
--- response_headers eval
["", "!Idempotent-Replayed", "!Idempotent-Replayed", ""]
--- response_body_like eval
[main::problem(503, 'Service Unavailable', 'redis_unavailable'),
 qr/"job_id":"\w+".*"credential_binding_link"/,
 qr/^\{"state":"accepted","delivery_method":"EMAIL"\}$/,
 qr/"create_identity":2,"create_job":1,/]
--- block_error_log eval
[qr/passkey: redis "127\.0\.0\.1:1" [^,\n]+, going on without rate limits and idempotency \(passkey_redis_down allow\)/,
 qr/passkey: redis "127\.0\.0\.1:1" [^,\n]+, going on without storing the job \(passkey_redis_down allow\)/]



=== TEST 11: a client that leaves after the job POST: the retry gets the answer
--- fault
{"route":"create_job","type":"delay","delay_ms":1000}
--- request
GET /ready
--- response_body
ready



=== TEST 12: a guard script that timed out gives its claim back
--- config
    location = /passkey/bind {
        passkey_redis_timeout 300ms;
        passkey_bind;
    }
--- request
GET /ready
--- response_body
ready



=== TEST 13: the claim outlives the bind deadline
--- config
    location = /passkey/bind {
        passkey_api_timeout 2s;
        passkey_redis_timeout 500ms;
        passkey_bind;
    }
--- fault
{"route":"create_identity","type":"delay","delay_ms":1800}
--- request
GET /ready
--- response_body
ready
