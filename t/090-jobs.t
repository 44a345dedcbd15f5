# The job endpoints: passkey_job_status answers a job kept in Redis and
# refreshes it from Beyond Identity at most once per
# passkey_job_refresh_interval; passkey_job_revoke revokes it there and
# records that.
#
# Jobs are made for real through the module's bind endpoint, so later
# requests need an id known only once the block's nginx runs: those flows
# are Perl code in a response body check keyed on the block name, and the
# block's own request is only "GET /ready".  Blocks that need no job are
# plain request blocks.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP ();
use Time::HiRes qw(sleep);

repeat_each(1);
no_shuffle();

our %Flows;
our $Users = 0;

my $Time = qr/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/;

sub nginx_url { "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}" }
sub bi_url    { "http://127.0.0.1:$ENV{TEST_NGINX_BI_PORT}" }

sub ua { HTTP::Tiny->new(timeout => 30) }

sub post_json {
    my ($url, $json, %headers) = @_;
    return ua()->post($url, { headers => { 'Content-Type' => 'application/json',
                                           %headers },
                              content => $json });
}

# a RETURN job through the module's bind endpoint
sub bind_job {
    my ($block) = @_;
    my $user = "user" . ++$Users;

    my $res = post_json(nginx_url() . "/passkey/bind",
                        qq({"username":"$user"}), 'X-User' => $user);

    die "bind answered $res->{status}: $res->{content}"
        unless $res->{status} == 200;
    sdk_record_link(sdk_links_in($res->{content}));

    my ($job) = $res->{content} =~ /"job_id":"(\w+)"/;
    my ($identity) = $res->{content} =~ /"identity_id":"(\w+)"/;

    return { id => $job, identity => $identity,
             key => block_prefix($block->seq_num) . "job:$job" };
}

sub status {
    my ($job, $location) = @_;
    $location //= '/passkey/jobs';
    return ua()->get(nginx_url() . "$location/$job->{id}");
}

sub revoke {
    my ($job, $suffix) = @_;
    return ua()->post(nginx_url() . "/passkey/revoke/$job->{id}"
                      . ($suffix // ':revoke'));
}

sub body { JSON::PP::decode_json($_[0]->{content}) }

# the stand-in's control API, for the block's tenant
sub fake {
    my ($block, $path, $json) = @_;
    my $url = bi_url() . "/__fake/$path?tenant=" . block_tenant($block->seq_num);
    my $res = defined $json ? post_json($url, $json) : ua()->get($url);
    die "stand-in $path: $res->{status} $res->{content}" unless $res->{success};
    return JSON::PP::decode_json($res->{content});
}

sub stats { fake($_[0], 'stats') }

sub stored {
    my ($job) = @_;
    return { @{ redis_cmd('HGETALL', $job->{key}) || [] } };
}

# a 200 with the job: state, shape, headers, no binding link
sub answered {
    my ($name, $res, $job, $state) = @_;

    Test::More::is($res->{status}, 200, "$name - 200");
    Test::More::is($res->{headers}{'content-type'}, 'application/json',
                   "$name - JSON");
    Test::More::is($res->{headers}{'cache-control'}, 'no-store',
                   "$name - Cache-Control: no-store");
    Test::More::unlike($res->{content},
                       qr/credential_binding_link|token=|invokeAuthenticator/,
                       "$name - no binding link");

    my $d = body($res);
    Test::More::is($d->{job_id}, $job->{id}, "$name - job_id");
    Test::More::is($d->{identity_id}, $job->{identity}, "$name - identity_id");
    Test::More::is($d->{state}, $state, "$name - state $state");

    return $d;
}

sub problem {
    my ($name, $res, $status, $code) = @_;

    Test::More::is($res->{status}, $status, "$name - $status");
    Test::More::is($res->{headers}{'content-type'}, 'application/problem+json',
                   "$name - problem+json");
    Test::More::like($res->{content}, qr/"code":"$code"/, "$name - $code");
}

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('request', "GET /ready")
        unless defined $block->request;

    my $config = $block->config // '';

    $config .= <<'CONF' unless $config =~ m{location /passkey/jobs/};
    location /passkey/jobs/ {
        passkey_job_refresh_interval 0;
        passkey_api_timeout 1s;
        passkey_job_status;

        add_header X-Job-Id $passkey_job_id always;
        add_header X-Identity-Id $passkey_identity_id always;
        add_header X-Job-State $passkey_job_state always;
    }
CONF

    $config .= <<'CONF' unless $config =~ m{location /passkey/revoke/};
    location /passkey/revoke/ {
        passkey_api_timeout 1s;
        passkey_job_revoke;
    }
CONF

    $block->set_value('config', $config . <<'CONF');
    location = /passkey/bind {
        # the user a trusted upstream vouches for
        passkey_bind_mode authenticated;
        passkey_username $http_x_user;
        passkey_bind;
    }

    location = /ready {
        return 200 "ready\n";
    }
CONF
});

# each flow runs while its block's nginx is up, after its request
run_flows(\%Flows);


$Flows{'the status of a new job'} = sub {
    my ($block, $name) = @_;
    my $job = bind_job($block);

    my $res = status($job);
    my $d = answered($name, $res, $job, 'LINK_SENT');

    Test::More::like($res->{content},
        qr/^\{"job_id":"\w+","identity_id":"\w+","state":"LINK_SENT","delivery_method":"RETURN","expire_time":"[^"]+","created_at":"$Time","refreshed_at":"$Time","refreshed":true\}\n$/,
        "$name - the members, in order");
    Test::More::is($res->{headers}{'x-job-id'}, $job->{id},
                   "$name - \$passkey_job_id");
    Test::More::is($res->{headers}{'x-identity-id'}, $job->{identity},
                   "$name - \$passkey_identity_id");
    Test::More::is($res->{headers}{'x-job-state'}, 'LINK_SENT',
                   "$name - \$passkey_job_state");

    my $s = stored($job);
    Test::More::is($s->{state}, 'LINK_SENT', "$name - redis state");
    Test::More::is($s->{refreshed_at}, $d->{refreshed_at},
                   "$name - redis refreshed_at");
    Test::More::ok(redis_cmd('TTL', $job->{key}) > 600000,
                   "$name - the TTL stays");

    $res = ua()->head(nginx_url() . "/passkey/jobs/$job->{id}");
    Test::More::is($res->{status}, 200, "$name - HEAD 200");
    Test::More::is($res->{content} // '', '', "$name - HEAD has no body");

    Test::More::is(stats($block)->{get_job}, 2,
                   "$name - both requests refreshed");
};


$Flows{'a refresh picks up the state at Beyond Identity; final states stop refreshing'} = sub {
    my ($block, $name) = @_;
    my $job = bind_job($block);

    fake($block, "jobs/$job->{id}/state", '{"state":"REQUEST_DELIVERED"}');

    my $d = answered("$name - delivered", status($job), $job,
                     'REQUEST_DELIVERED');
    Test::More::ok($d->{refreshed}, "$name - delivered: refreshed");
    Test::More::is(stored($job)->{state}, 'REQUEST_DELIVERED',
                   "$name - delivered: in redis");

    fake($block, "jobs/$job->{id}/complete", '{}');

    $d = answered("$name - complete", status($job), $job, 'COMPLETE');
    Test::More::ok($d->{refreshed}, "$name - complete: refreshed");
    Test::More::is(stored($job)->{state}, 'COMPLETE',
                   "$name - complete: in redis");

    # COMPLETE is final: no more calls, however often the client asks
    fake($block, "jobs/$job->{id}/state", '{"state":"LINK_OPENED"}');

    for my $i (1 .. 2) {
        my $res = status($job);
        $d = answered("$name - complete again $i", $res, $job, 'COMPLETE');
        Test::More::ok(!exists $d->{refreshed},
                       "$name - complete again $i: not refreshed");
    }

    Test::More::is(stats($block)->{get_job}, 2,
                   "$name - two refreshes, none after COMPLETE");
};


$Flows{'an unknown state is passed through'} = sub {
    my ($block, $name) = @_;
    my $job = bind_job($block);

    fake($block, "jobs/$job->{id}/state", '{"state":"WEIRD_NEW_STATE"}');

    my $res = status($job);
    my $d = answered($name, $res, $job, 'WEIRD_NEW_STATE');
    Test::More::ok($d->{refreshed}, "$name - refreshed");
    Test::More::is($res->{headers}{'x-job-state'}, 'WEIRD_NEW_STATE',
                   "$name - \$passkey_job_state");
    Test::More::is(stored($job)->{state}, 'WEIRD_NEW_STATE',
                   "$name - in redis");

    # not a final state: it is refreshed as any other
    fake($block, "jobs/$job->{id}/state", '{"state":"LINK_OPENED"}');
    answered("$name - then", status($job), $job, 'LINK_OPENED');
};


$Flows{'at most one refresh per interval, however many requests'} = sub {
    my ($block, $name) = @_;
    my $job = bind_job($block);

    fake($block, 'faults',
         '{"route":"get_job","type":"delay","delay_ms":300,"count":0}');

    # five at once: one refreshes, the others answer what Redis holds
    my @socks = map {
        IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                              PeerPort => $ENV{TEST_NGINX_SERVER_PORT},
                              Timeout => 30)
            or die "connect: $!"
    } 1 .. 5;

    for my $s (@socks) {
        print $s "GET /passkey/slow/$job->{id} HTTP/1.1\r\n"
                 . "Host: 127.0.0.1\r\nConnection: close\r\n\r\n";
    }

    my ($ok, $refreshed) = (0, 0);
    for my $s (@socks) {
        local $/;
        my $res = <$s> // '';
        close $s;
        $ok++ if $res =~ m{^HTTP/1\.1 200 };
        $refreshed++ if $res =~ /"refreshed":true/;
    }

    Test::More::is($ok, 5, "$name - five 200");
    Test::More::is($refreshed, 1, "$name - one of them refreshed");

    my $d = answered("$name - again", status($job, '/passkey/slow'), $job,
                     'LINK_SENT');
    Test::More::ok(!exists $d->{refreshed}, "$name - again: not refreshed");
    Test::More::is(stats($block)->{get_job}, 1,
                   "$name - one call within the interval");

    sleep 3.1;

    $d = answered("$name - after the interval",
                  status($job, '/passkey/slow'), $job, 'LINK_SENT');
    Test::More::ok($d->{refreshed}, "$name - after the interval: refreshed");
    Test::More::is(stats($block)->{get_job}, 2,
                   "$name - another call after the interval");

    # the interval is the location's: another one may refresh at once
    $d = answered("$name - interval 0", status($job), $job, 'LINK_SENT');
    Test::More::ok($d->{refreshed}, "$name - interval 0: refreshed");
};


$Flows{'a failed refresh answers the stored state'} = sub {
    my ($block, $name) = @_;
    my $job = bind_job($block);

    my @faults = (
        ['503', '{"route":"get_job","type":"status","status":503}'],
        ['timeout', '{"route":"get_job","type":"delay","delay_ms":1500}'],
        ['malformed', '{"route":"get_job","type":"malformed"}'],
        ['no state', '{"route":"get_job","type":"wrong_shape"}'],
    );

    for my $f (@faults) {
        my ($what, $fault) = @$f;

        fake($block, 'faults', $fault);

        my $res = status($job);
        my $d = answered("$name - $what", $res, $job, 'LINK_SENT');
        Test::More::like($res->{content}, qr/"refreshed":false\}\n$/,
                         "$name - $what: refreshed false");
        Test::More::ok(!exists $d->{refreshed_at},
                       "$name - $what: no refreshed_at");
    }

    my $s = stored($job);
    Test::More::is($s->{state}, 'LINK_SENT', "$name - redis state kept");
    Test::More::ok(!exists $s->{refreshed_at}, "$name - never refreshed");

    # and once the API is back
    my $d = answered("$name - back", status($job), $job, 'LINK_SENT');
    Test::More::ok($d->{refreshed}, "$name - back: refreshed");
};


$Flows{'a job Beyond Identity no longer knows'} = sub {
    my ($block, $name) = @_;
    my $job = bind_job($block);

    fake($block, 'faults', '{"route":"get_job","type":"status","status":404,'
                           . '"body":"{\"code\":\"not_found\",'
                           . '\"message\":\"credential binding job not found\"}"}');

    problem($name, status($job), 404, 'unknown_job');
    Test::More::like(stored($job)->{gone_at} // '', qr/^$Time$/,
                     "$name - marked gone in redis");

    # from now on without asking the API
    problem("$name - again", status($job), 404, 'unknown_job');
    problem("$name - revoke", revoke($job), 404, 'unknown_job');

    my $stats = stats($block);
    Test::More::is($stats->{get_job}, 1, "$name - one get_job");
    Test::More::is($stats->{revoke_job}, 0, "$name - no revoke_job");
};


$Flows{'revoke a job'} = sub {
    my ($block, $name) = @_;
    my $job = bind_job($block);

    my $res = revoke($job);
    my $d = answered($name, $res, $job, 'REVOKED');
    Test::More::like($res->{content},
        qr/^\{"job_id":"\w+","identity_id":"\w+","state":"REVOKED","delivery_method":"RETURN","expire_time":"[^"]+","created_at":"$Time","revoked_at":"$Time"\}\n$/,
        "$name - the members, in order");

    my $bi = fake($block, "jobs/$job->{id}");
    Test::More::is($bi->{job}{state}, 'REVOKED', "$name - revoked at the API");

    my $s = stored($job);
    Test::More::is($s->{state}, 'REVOKED', "$name - redis state");
    Test::More::is($s->{revoked_at}, $d->{revoked_at}, "$name - redis revoked_at");
    Test::More::ok(redis_cmd('TTL', $job->{key}) > 600000,
                   "$name - the TTL stays");

    my ($call) = grep { $_->{route} eq 'revoke_job' }
                 @{ fake($block, 'requests')->{requests} };
    Test::More::is($call->{method}, 'POST', "$name - POST");
    Test::More::like($call->{path},
        qr{^/v1/tenants/\w+/realms/r1/identities/$job->{identity}/credential-binding-jobs/$job->{id}:revoke$},
        "$name - the revoke path");
    Test::More::is($call->{body}, '{}', "$name - the body is {}");

    # again, and without ":revoke": answered from Redis
    answered("$name - again", revoke($job, ''), $job, 'REVOKED');

    $d = answered("$name - status", status($job), $job, 'REVOKED');
    Test::More::ok(!exists $d->{refreshed}, "$name - status: not refreshed");

    my $stats = stats($block);
    Test::More::is($stats->{revoke_job}, 1, "$name - one revoke_job");
    Test::More::is($stats->{get_job}, 0, "$name - no get_job");
};


$Flows{'a complete job cannot be revoked'} = sub {
    my ($block, $name) = @_;
    my $job = bind_job($block);

    fake($block, "jobs/$job->{id}/complete", '{}');

    my $res = revoke($job);
    problem($name, $res, 409, 'job_complete');
    Test::More::like($res->{content},
                     qr/"detail":"the job is complete and cannot be revoked"/,
                     "$name - detail");
    Test::More::is(stored($job)->{state}, 'COMPLETE', "$name - redis state");

    problem("$name - again", revoke($job), 409, 'job_complete');
    Test::More::is(stats($block)->{revoke_job}, 1, "$name - one revoke_job");

    answered("$name - status", status($job), $job, 'COMPLETE');
};


$Flows{'a failed revoke'} = sub {
    my ($block, $name) = @_;
    my $job = bind_job($block);

    fake($block, 'faults', '{"route":"revoke_job","type":"status","status":500}');
    problem("$name - 500", revoke($job), 502, 'api_error');

    fake($block, 'faults',
         '{"route":"revoke_job","type":"delay","delay_ms":1500,"apply":false}');
    problem("$name - timeout", revoke($job), 504, 'api_timeout');

    Test::More::is(stored($job)->{state}, 'LINK_SENT', "$name - redis state kept");

    answered("$name - then", revoke($job), $job, 'REVOKED');
};


$Flows{'a client that leaves mid-refresh ends the call'} = sub {
    my ($block, $name) = @_;
    my $job = bind_job($block);

    fake($block, 'faults', '{"route":"get_job","type":"delay","delay_ms":1500}');

    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $ENV{TEST_NGINX_SERVER_PORT},
                                  Timeout => 30)
        or die "connect: $!";
    print $s "GET /passkey/jobs/$job->{id} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

    # leave once the call is at the API
    for (1 .. 200) {
        last if stats($block)->{get_job};
        sleep 0.05;
    }
    close $s;

    sleep 1.6;

    Test::More::ok(!exists stored($job)->{refreshed_at},
                   "$name - the answer was never stored");

    answered("$name - the next request", status($job), $job, 'LINK_SENT');
};


run_tests();

__DATA__

=== TEST 1: the status of a new job
--- response_body
ready



=== TEST 2: a refresh picks up the state at Beyond Identity; final states stop refreshing
--- response_body
ready



=== TEST 3: an unknown state is passed through
--- response_body
ready



=== TEST 4: at most one refresh per interval, however many requests
--- config
    location /passkey/slow/ {
        passkey_job_refresh_interval 3s;
        passkey_job_status;
    }
--- response_body
ready



=== TEST 5: a failed refresh answers the stored state
--- response_body
ready
--- error_log eval
[qr/\[error\] .*passkey: refreshing binding job \w+ failed, answering the stored state: GET \/identities\/\w+\/credential-binding-jobs\/\w+ answered 503/,
 qr/\[error\] .*passkey: refreshing binding job \w+ failed, answering the stored state: (Timeout was reached|.*timed out)/,
 qr/\[error\] .*passkey: refreshing binding job \w+ failed, answering the stored state: the job has no valid state/]



=== TEST 6: a job Beyond Identity no longer knows
--- response_body
ready
--- error_log eval
[qr/\[error\] .*passkey: Beyond Identity does not know binding job \w+ \(GET \/identities\/\w+\/credential-binding-jobs\/\w+ answered 404 "not_found" "credential binding job not found"\), marking it gone/,
 qr/\[info\] .*passkey: binding job \w+ is no longer known to Beyond Identity/]



=== TEST 7: revoke a job
--- response_body
ready
--- error_log eval
[qr/\[info\] .*passkey: binding job \w+ of identity \w+ revoked/,
 qr/\[info\] .*passkey: binding job \w+ was revoked already/]



=== TEST 8: a complete job cannot be revoked
--- response_body
ready
--- error_log eval
[qr/\[error\] .*passkey: binding job \w+ is complete and cannot be revoked \(POST \/identities\/\w+\/credential-binding-jobs\/\w+:revoke answered 409\)/,
 qr/\[info\] .*passkey: binding job \w+ is complete and cannot be revoked while reading the passkey binding job/]



=== TEST 9: a failed revoke
--- response_body
ready
--- error_log eval
[qr/\[error\] .*passkey: POST \/identities\/\w+\/credential-binding-jobs\/\w+:revoke answered 500/,
 qr/\[error\] .*passkey: POST \/identities\/\w+\/credential-binding-jobs\/\w+:revoke failed/]



=== TEST 10: a client that leaves mid-refresh ends the call
--- response_body
ready
--- error_log eval
qr/client prematurely closed connection.* while refreshing the passkey binding job/
--- no_error_log
[alert]
[crit]



=== TEST 11: an unknown job
--- request eval
["GET /passkey/jobs/0123456789abcdef",
 "POST /passkey/revoke/0123456789abcdef:revoke"]
--- error_code eval
[404, 404]
--- response_body_like eval
[qr/^\{"type":"urn:ngx-passkey:problem:unknown_job","title":"Not Found","status":404,"detail":"no binding job of this id is known","code":"unknown_job","request_id":"[0-9a-f]{32}"\}$/,
 qr/"code":"unknown_job"/]
--- error_log eval
qr/\[info\] .*passkey: binding job 0123456789abcdef is not known while reading the passkey binding job/



=== TEST 12: an invalid job id
--- request eval
["GET /passkey/jobs/bad.id",
 "GET /passkey/jobs/",
 "GET /passkey/jobs/" . ("a" x 129),
 "GET /passkey/jobs/abc:revoke",
 "POST /passkey/revoke/:revoke",
 "POST /passkey/revoke/a%20b:revoke"]
--- error_code eval
[400, 400, 400, 400, 400, 400]
--- response_body_like eval
[qr/^\{"type":"urn:ngx-passkey:problem:invalid_job_id","title":"Bad Request","status":400,"detail":"the job id must be 1 to 128 letters, digits, \\"-\\" or \\"_\\"","code":"invalid_job_id","request_id":"[0-9a-f]{32}"\}$/,
 qr/"code":"invalid_job_id"/,
 qr/"code":"invalid_job_id"/,
 qr/"code":"invalid_job_id"/,
 qr/"code":"invalid_job_id"/,
 qr/"code":"invalid_job_id"/]
--- error_log eval
qr/\[info\] .*passkey: invalid_job_id: the job id must be 1 to 128 letters/



=== TEST 13: methods that are not allowed
--- request eval
["POST /passkey/jobs/0123456789abcdef",
 "DELETE /passkey/jobs/0123456789abcdef",
 "GET /passkey/revoke/0123456789abcdef:revoke",
 "PUT /passkey/revoke/0123456789abcdef"]
--- error_code eval
[405, 405, 405, 405]
--- response_headers eval
["Allow: GET, HEAD\nContent-Type: application/problem+json\nCache-Control: no-store",
 "Allow: GET, HEAD",
 "Allow: POST\nContent-Type: application/problem+json\nCache-Control: no-store",
 "Allow: POST"]
--- response_body_like eval
[qr/^\{"type":"urn:ngx-passkey:problem:method_not_allowed","title":"Method Not Allowed","status":405,"code":"method_not_allowed","request_id":"[0-9a-f]{32}"\}$/,
 qr/"code":"method_not_allowed"/,
 qr/"code":"method_not_allowed"/,
 qr/"code":"method_not_allowed"/]
--- error_log eval
qr/\[info\] .*passkey: method (POST|DELETE|GET|PUT) not allowed/



=== TEST 14: redis is unavailable
--- config
    location /passkey/jobs/ {
        passkey_redis 127.0.0.1:1;
        passkey_job_status;
    }

    location /passkey/revoke/ {
        passkey_redis 127.0.0.1:1;
        passkey_job_revoke;
    }
--- request eval
["GET /passkey/jobs/0123456789abcdef",
 "POST /passkey/revoke/0123456789abcdef:revoke"]
--- error_code eval
[503, 503]
--- response_body_like eval
[qr/^\{"type":"urn:ngx-passkey:problem:redis_unavailable","title":"Service Unavailable","status":503,"detail":"job storage is unavailable","code":"redis_unavailable"/,
 qr/"code":"redis_unavailable"/]
--- error_log eval
qr/\[error\] .*passkey: cannot read binding job 0123456789abcdef: redis "127\.0\.0\.1:1" is unavailable while reading the passkey binding job/
