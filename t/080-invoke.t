# The invoke_url handler (passkey_invoke): the /bind URL that an emailed
# binding link leads to is checked against the configuration, the job in
# Redis and the job's state at Beyond Identity, and handed to the app, to
# a static page or by a redirect with the link in the fragment; again
# while the job is live, or once with passkey_invoke_reopen off.
#
# The links are made for real: each flow creates an EMAIL job through the
# module's bind endpoint, reads Beyond Identity's mail from the stand-in's
# outbox and follows its link there, which answers 302 to the /bind URL.
# That happens while the block's nginx runs, so it is Perl code in a
# response body check keyed on the block name; each block's own request
# is only "GET /ready".

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP ();
use URI::Escape qw(uri_unescape);

$ENV{TEST_NGINX_HTML_DIR} ||= html_dir();

repeat_each(1);
no_shuffle();

# nginx's own debug lines show the request line as it came, token and
# all: never run production at "debug", nor these tests
log_level('info');

our %Flows;

require t::Invoke;

run_flows(\%Flows);


$Flows{'a good link reaches the app byte for byte, while the job is live'}
= sub {
    my ($block, $name) = @_;
    my $link = email_job($block);
    my $expected = "link=$link->{url} job=$link->{job} "
                   . "identity=$link->{identity} state=LINK_OPENED "
                   . "method=EMAIL uri=/app/bind\n";

    my $calls = api_calls($block, 'get_job');
    my $res = get($link->{url});

    Test::More::is($res->{status}, 200, "$name - 200 from the app");
    Test::More::is($res->{content}, $expected,
                   "$name - the app got the link as the browser sent it");
    both_headers($name, $res);
    opened_in_redis($name, $link);
    Test::More::is(api_calls($block, 'get_job'), $calls + 1,
                   "$name - the job's state was read from the API");

    # a reload, or the user after a mail scanner
    $res = get($link->{url});
    Test::More::is($res->{status}, 200, "$name - opened again: 200");
    Test::More::is($res->{content}, $expected, "$name - the same link");
    opened_in_redis("$name - again", $link, 2);

    # the passkey is made: the link is done, whatever Redis said
    my $done = post_json(bi_url() . "/__fake/jobs/$link->{job}/complete",
                         '{}');
    die "stand-in complete: $done->{status}" unless $done->{success};

    refused("$name - complete", get($link->{url}), 410, 'job_complete',
            0, $link);
    my %job = @{ redis_cmd('HGETALL', $link->{key}) };
    Test::More::is($job{state}, 'COMPLETE', "$name - recorded in redis");

    $calls = api_calls($block, 'get_job');
    refused("$name - complete, JSON",
            get($link->{url}, Accept => 'application/json'), 410,
            'job_complete', 1, $link);
    Test::More::is(api_calls($block, 'get_job'), $calls,
                   "$name - then answered from redis alone");

    my $html = get($link->{url})->{content};
    Test::More::like($html,
                     qr{<h1>A passkey was already set up with this link\.</h1>},
                     "$name - the page says why");

    logs_clean($name, $link);
};


$Flows{'a static page, once with passkey_invoke_reopen off'} = sub {
    my ($block, $name) = @_;
    my $link = email_job($block);

    my $res = get($link->{url});

    Test::More::is($res->{status}, 200, "$name - 200");
    Test::More::is($res->{content},
                   "<!DOCTYPE html><title>bind</title>"
                   . "<script src=\"/sdk.js\"></script>\n",
                   "$name - the page as it is, nothing injected");
    both_headers($name, $res);

    refused("$name - replay", get($link->{url}), 409, 'link_already_used',
            0, $link);
    refused("$name - replay, JSON",
            get($link->{url}, Accept => 'application/json'), 409,
            'link_already_used', 1, $link);
    Test::More::like(get($link->{url})->{content},
                     qr{<h1>This link was already used\.</h1>},
                     "$name - the page says why");

    logs_clean($name, $link);
};


$Flows{'the redirect style carries the link in the fragment'} = sub {
    my ($block, $name) = @_;
    my $link = email_job($block);

    my $res = get($link->{url});

    Test::More::is($res->{status}, 302, "$name - 302");
    both_headers($name, $res);

    my $location = $res->{headers}{location} // '';
    my ($to, $fragment) = $location =~ m{^(http://[^#]+)#(.*)$};

    Test::More::is($to, nginx_url() . "/app/finish",
                   "$name - to the configured page");
    Test::More::unlike($fragment, qr/[^A-Za-z0-9%._~-]/,
                       "$name - the fragment is percent-encoded");
    Test::More::is(uri_unescape($fragment), $link->{url},
                   "$name - the fragment is the link");

    $res = get($link->{url});
    Test::More::is($res->{status}, 302, "$name - a reload: 302 again");
    Test::More::is($res->{headers}{location}, $location,
                   "$name - to the same place");

    logs_clean($name, $link);
};


$Flows{'reopen off: two requests with one link at once, one gets through'}
= sub {
    my ($block, $name) = @_;

    for my $i (1 .. 3) {
        my $link = email_job($block);
        Test::More::is(two_at_once($link->{url}), '200 409',
                       "$name - round $i: one 200, one 409");
    }
};


$Flows{'HEAD checks a link without using it up'} = sub {
    my ($block, $name) = @_;
    my $link = email_job($block);

    my $res = ua()->request('HEAD', $link->{url});
    Test::More::is($res->{status}, 200, "$name - HEAD 200");
    both_headers("$name - HEAD", $res);

    my %job = @{ redis_cmd('HGETALL', $link->{key}) };
    Test::More::ok(!exists $job{opened_at}, "$name - HEAD left no mark");

    Test::More::is(get($link->{url})->{status}, 200, "$name - GET 200");

    $res = ua()->request('HEAD', $link->{url});
    Test::More::is($res->{status}, 200, "$name - HEAD after use: 200");
    both_headers("$name - HEAD after use", $res);
    opened_in_redis("$name - HEAD did not count", $link, 1);

    # and what Beyond Identity says counts for HEAD too
    set_state($link, 'REVOKED');
    $res = ua()->request('HEAD', $link->{url});
    Test::More::is($res->{status}, 410, "$name - HEAD of a revoked job: 410");
    both_headers("$name - HEAD of a revoked job", $res);
};


$Flows{'expired, revoked and complete jobs'} = sub {
    my ($block, $name) = @_;

    my @cases = (
        ['expire_time', '2020-01-01T00:00:00.000000Z', 410, 'link_expired'],
        ['state', 'EXPIRED', 410, 'link_expired'],
        ['state', 'REVOKED', 410, 'job_revoked'],
        ['state', 'COMPLETE', 410, 'job_complete'],
        ['state', 'FAILED_TO_SEND', 404, 'unknown_job'],
        ['gone_at', '2026-01-01T00:00:00Z', 404, 'unknown_job'],
    );

    my $i = 0;
    for my $case (@cases) {
        my ($field, $value, $status, $code) = @$case;
        my $json = $i++ % 2;
        my $link = email_job($block);

        redis_cmd('HSET', $link->{key}, $field, $value);

        refused("$name - $field $value", get($link->{url},
                Accept => $json ? 'application/json' : 'text/html'),
                $status, $code, $json, $link);
    }

    # one a minute from now is still good
    my $link = email_job($block);
    my @t = gmtime(time + 60);
    redis_cmd('HSET', $link->{key}, 'expire_time',
              sprintf('%04d-%02d-%02dT%02d:%02d:%02d.123456Z',
                      $t[5] + 1900, $t[4] + 1, @t[3, 2, 1, 0]));
    Test::More::is(get($link->{url})->{status}, 200,
                   "$name - expiring in a minute: 200");

    # the console revoked it, completed it, or it expired at BI: the API
    # says so while Redis still holds it as sent
    for my $case (['REVOKED', 410, 'job_revoked'],
                  ['COMPLETE', 410, 'job_complete'],
                  ['EXPIRED', 410, 'link_expired'],
                  ['FAILED_TO_SEND', 404, 'unknown_job'])
    {
        my ($state, $status, $code) = @$case;
        $link = email_job($block);
        set_state($link, $state);

        refused("$name - $state at Beyond Identity",
                get($link->{url}, Accept => 'application/json'),
                $status, $code, 1, $link);

        my %job = @{ redis_cmd('HGETALL', $link->{key}) };
        Test::More::is($job{state}, $state, "$name - $state recorded");
        Test::More::is($job{job_id}, $link->{job},
                       "$name - $state: redis still holds the job");
    }
};


$Flows{'tampered links are refused'} = sub {
    my ($block, $name) = @_;
    my $link = email_job($block);
    my $url = $link->{url};
    my $n = 0;

    my @cases = (
        ['api_base_url of another host',
         changed('api_base_url', 'https%3A%2F%2Fevil.example'),
         403, 'foreign_link'],
        ['api_base_url with a longer host',
         changed('api_base_url',
                 "http%3A%2F%2F127.0.0.1%3A$ENV{TEST_NGINX_BI_PORT}.evil"),
         403, 'foreign_link'],
        ['api_base_url with a bad escape',
         changed('api_base_url', 'http%3A%2F%2F127.0.0.1%3Zbad'),
         400, 'invalid_link'],
        ['another tenant_id', changed('tenant_id', 'someoneelse'),
         403, 'foreign_link'],
        ['another realm_id', changed('realm_id', 'r2'), 403, 'foreign_link'],
        ['another identity_id', changed('identity_id', '0123456789abcdef'),
         404, 'unknown_job'],
        ['another job_id', changed('job_id', 'fedcba9876543210'),
         404, 'unknown_job'],
        ['a job_id that is no id', changed('job_id', 'a.b'),
         400, 'invalid_link'],
        ['a token of 2049 bytes', changed('token', 'x' x 2049),
         400, 'invalid_link'],
        ['a token with a bad escape', changed('token', 'abc%zz'),
         400, 'invalid_link'],
        ['an empty token', changed('token', ''), 400, 'invalid_link'],
        ['TOKEN for token', renamed('token', 'TOKEN'), 400, 'invalid_link'],
        ['job%5Fid for job_id', renamed('job_id', 'job%5Fid'),
         400, 'invalid_link'],
        ['a second token spelled tok%65n',
         sub { (@_, ['tok%65n', 'other']) }, 400, 'invalid_link'],
        ['a second tenant spelled Tenant_ID',
         sub { (@_, ['Tenant_ID', 'someoneelse']) }, 400, 'invalid_link'],
        (map { ["no $_", missing($_), 400, 'invalid_link'],
               ["$_ twice", duplicated($_), 400, 'invalid_link'] }
         qw(api_base_url tenant_id realm_id identity_id job_id token)),
    );

    for my $case (@cases) {
        my ($what, $edit, $status, $code) = @$case;
        my $json = $n++ % 2;

        refused("$name - $what", get(tampered($url, $edit),
                $json ? (Accept => 'application/problem+json') : ()),
                $status, $code, $json, $link);
    }

    # none of them used the link up
    my $res = get($url);
    Test::More::is($res->{status}, 200, "$name - the real link still works");

    logs_clean($name, $link);
};


$Flows{'api_base_url encoded or not, any case, one trailing slash'} = sub {
    my ($block, $name) = @_;
    my $api = "127.0.0.1:$ENV{TEST_NGINX_BI_AUTH_PORT}";

    for my $value ("http://$api", "HTTP%3A%2F%2F$api%2F", "Http://$api/") {
        my $link = email_job($block);
        my $url = tampered($link->{url}, changed('api_base_url', $value));
        Test::More::is(get($url)->{status}, 200, "$name - $value");
    }

    my $link = email_job($block);
    my $url = tampered($link->{url},
                       changed('api_base_url', "http://$api//"));
    refused("$name - two trailing slashes", get($url), 403, 'foreign_link',
            0, $link);
};


$Flows{"another identity's job and a RETURN job read as unknown"} = sub {
    my ($block, $name) = @_;
    my $mine = email_job($block);
    my $theirs = email_job($block);

    refused("$name - another identity", get(tampered($mine->{url},
            changed('identity_id', $theirs->{identity}))), 404,
            'unknown_job', 0, $mine);

    my ($job, $identity) = bind_job('RETURN');
    my $url = tampered($mine->{url}, sub {
        map { $_->[0] eq 'job_id' ? ['job_id', $job]
              : $_->[0] eq 'identity_id' ? ['identity_id', $identity]
              : $_ } @_ });

    refused("$name - a RETURN job", get($url, Accept => 'application/json'),
            404, 'unknown_job', 1, $mine);

    Test::More::is(get($mine->{url})->{status}, 200,
                   "$name - the right link still works");
};


$Flows{'the app failing still answers no-store'} = sub {
    my ($block, $name) = @_;
    my $link = email_job($block);

    my $res = get($link->{url});
    Test::More::is($res->{status}, 502, "$name - 502");
    both_headers($name, $res);

    logs_clean($name, $link);
};


$Flows{'an internal redirect after the check does not use the link twice'}
= sub {
    my ($block, $name) = @_;
    my $link = email_job($block);

    my $res = get($link->{url});
    Test::More::is($res->{status}, 200, "$name - 200");
    Test::More::is($res->{content}, "page\n", "$name - the fallback page");
    Test::More::is($res->{headers}{'x-passkey-job'}, $link->{job},
                   "$name - the variables survive the redirect");
    both_headers($name, $res);
    opened_in_redis($name, $link, 1);
};


$Flows{'a redirect URL with a fragment of its own is refused'} = sub {
    my ($block, $name) = @_;
    my $link = email_job($block);

    refused($name, get($link->{url}, Accept => 'application/json'), 500,
            'internal_error', 1, $link);
};

$Flows{'a redirect built from variables may only go to an allowed origin'}
= sub {
    my ($block, $name) = @_;
    my $link = email_job($block);

    # the origin comes from a header here: an attacker's choice
    refused("$name - elsewhere",
            get($link->{url}, Accept => 'application/json',
                'X-To' => 'evil.example.net'),
            500, 'internal_error', 1, $link);

    $link = email_job($block);

    my $res = get($link->{url},
                  'X-To' => "127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}");

    Test::More::is($res->{status}, 302, "$name - allowed: 302");
    Test::More::like($res->{headers}{location} // '',
                     qr{^http://127\.0\.0\.1:\d+/app/finish\?job=$link->{job}#http},
                     "$name - allowed: to the page, the link in the fragment");
};

$Flows{'"//host" is another site, whatever its variables'} = sub {
    my ($block, $name) = @_;
    my $link = email_job($block);

    refused($name, get($link->{url}, Accept => 'application/json'), 500,
            'internal_error', 1, $link);
};


# access checks and limits come first: what they refuse uses no link
$Flows{'access checks and limits run before the link check'} = sub {
    my ($block, $name) = @_;
    my $link = email_job($block);
    my ($query) = $link->{url} =~ /(\?.*)$/;
    my $res;

    $res = get($link->{url}, 'X-Limit' => 'k1');
    Test::More::is($res->{status}, 401, "$name - auth_request refuses: 401");

    $res = get($link->{url}, 'X-Limit' => 'k1', 'X-Session' => 'ok');
    Test::More::is($res->{status}, 503, "$name - limit_req refuses: 503");

    $res = get(nginx_url() . "/denied/bind$query", 'X-Session' => 'ok');
    Test::More::is($res->{status}, 403, "$name - deny refuses: 403");

    my %job = @{ redis_cmd('HGETALL', $link->{key}) || [] };
    Test::More::ok(!exists $job{opened_at}, "$name - the link is unused");

    $res = get($link->{url}, 'X-Limit' => 'k2', 'X-Session' => 'ok');
    Test::More::is($res->{status}, 200, "$name - then it opens: 200");
    Test::More::like($res->{content}, qr/^link=\Q$link->{url}\E /,
                     "$name - the app gets the link");
    opened_in_redis($name, $link, 1);
    logs_clean($name, $link);
};


run_tests();

__DATA__

=== TEST 1: a good link reaches the app byte for byte, while the job is live
--- config
    location = /app/bind {
        passkey_invoke;

        proxy_set_header  X-Passkey-Link      $passkey_binding_link;
        proxy_set_header  X-Passkey-Job       $passkey_job_id;
        proxy_set_header  X-Passkey-Identity  $passkey_identity_id;
        proxy_set_header  X-Passkey-State     $passkey_job_state;
        proxy_set_header  X-Passkey-Method    $passkey_delivery_method;

        # $uri: the query, and so the token, never reaches the app's logs
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- response_body
ready
--- error_log eval
[qr/passkey: binding link of job [0-9a-f]{16} opened/,
 qr/\[info\] .*passkey: Beyond Identity says binding job [0-9a-f]{16} is COMPLETE/,
 qr/\[info\] .*passkey: binding link of job [0-9a-f]{16} refused: the binding job is complete/]



=== TEST 2: a static page, once with passkey_invoke_reopen off
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_invoke_reopen off;
        default_type text/html;
        alias $TEST_NGINX_HTML_DIR/bind.html;
    }
--- user_files
>>> bind.html
<!DOCTYPE html><title>bind</title><script src="/sdk.js"></script>
--- response_body
ready



=== TEST 3: the redirect style carries the link in the fragment
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_invoke_redirect /app/finish;
    }
--- response_body
ready



=== TEST 4: reopen off: two requests with one link at once, one gets through
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_invoke_reopen off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- response_body
ready



=== TEST 5: HEAD checks a link without using it up
--- config
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- response_body
ready



=== TEST 6: expired, revoked and complete jobs
--- config
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- response_body
ready
--- error_log
refused: the binding job has expired
refused: the binding job was revoked
refused: the binding job is complete
refused: no emailed binding job of this identity



=== TEST 7: tampered links are refused
--- config
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- response_body
ready
--- error_log
passkey: invalid binding link: no "token" argument
passkey: invalid binding link: more than one "api_base_url" argument
passkey: invalid binding link: an oddly spelled "token" argument
passkey: invalid binding link: an invalid "token" argument
has a foreign "api_base_url"
has a foreign "tenant_id"
has a foreign "realm_id"



=== TEST 8: api_base_url encoded or not, any case, one trailing slash
--- config
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- response_body
ready



=== TEST 9: another identity's job and a RETURN job read as unknown
--- config
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- response_body
ready



=== TEST 10: the app failing still answers no-store
--- config
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_2$uri;
    }
--- response_body
ready
--- error_log
connect() failed



=== TEST 11: an internal redirect after the check does not use the link twice
--- config
    location = /app/bind {
        passkey_invoke;
        root $TEST_NGINX_HTML_DIR;
        try_files /missing.html /bind-page.html;
    }

    location = /bind-page.html {
        passkey_invoke;
        root $TEST_NGINX_HTML_DIR;
        add_header X-Passkey-Job $passkey_job_id always;
    }
--- user_files
>>> bind-page.html
page
--- response_body
ready



=== TEST 12: POST is not allowed
--- config
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- request eval
"POST /app/bind?api_base_url=http%3A%2F%2F127.0.0.1%3A$ENV{TEST_NGINX_BI_PORT}&tenant_id=t&realm_id=r1&identity_id=0123456789abcdef&job_id=fedcba9876543210&token=" . ("p" x 48) . "\nbody"
--- error_code: 405
--- response_headers
Allow: GET, HEAD
Cache-Control: no-store
Referrer-Policy: no-referrer
Content-Type: text/html; charset=utf-8
--- response_body_like: <h1>This page opens from a link in an email\.</h1>
--- error_log
passkey: method POST not allowed for a binding link
--- no_access_log
pppppppppppppppppppp



=== TEST 13: no arguments at all, JSON asked for
--- config
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- request
GET /app/bind
--- more_headers
Accept: application/json
--- error_code: 400
--- response_headers
Cache-Control: no-store
Referrer-Policy: no-referrer
Content-Type: application/problem+json
--- response_body_like: ^\{"type":"urn:ngx-passkey:problem:invalid_link","title":"Bad Request","status":400,"detail":"this link is not a valid binding link","code":"invalid_link","request_id":"[0-9a-f]{32}"\}$
--- error_log
passkey: invalid binding link: no "api_base_url" argument



=== TEST 14: Redis down: 503
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_tenant_id tredisdown;
        passkey_redis 127.0.0.1:1;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- request eval
"GET /app/bind?api_base_url=http%3A%2F%2F127.0.0.1%3A$ENV{TEST_NGINX_BI_PORT}&tenant_id=tredisdown&realm_id=r1&identity_id=0123456789abcdef&job_id=fedcba9876543210&token=" . ("q" x 48)
--- error_code: 503
--- response_headers
Cache-Control: no-store
Referrer-Policy: no-referrer
Content-Type: text/html; charset=utf-8
--- response_body_like: code: redis_unavailable;
--- error_log eval
qr/binding link (check )?of job fedcba9876543210/
--- no_access_log
qqqqqqqqqqqqqqqqqqqq



=== TEST 15: no passkey_invoke, no checks
--- config
    location = /app/bind {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- request
GET /app/bind?token=whatever
--- error_code: 200
--- response_body
link= job= identity= state= method= uri=/app/bind



=== TEST 16: Redis hangs: 503 once passkey_redis_timeout has passed
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_tenant_id tredishangs;
        passkey_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
        passkey_redis_timeout 300ms;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- tcp_listen: $TEST_NGINX_RAND_PORT_3
--- tcp_reply_delay: 2s
--- tcp_reply eval
"+OK\r\n"
--- request eval
"GET /app/bind?api_base_url=http%3A%2F%2F127.0.0.1%3A$ENV{TEST_NGINX_BI_PORT}&tenant_id=tredishangs&realm_id=r1&identity_id=0123456789abcdef&job_id=fedcba9876543210&token=" . ("h" x 48)
--- more_headers
Accept: application/json
--- error_code: 503
--- response_headers
Cache-Control: no-store
Referrer-Policy: no-referrer
--- response_body_like: "code":"redis_unavailable"
--- error_log
timed out while checking the binding link of job fedcba9876543210



=== TEST 17: a client that leaves while Redis is asked
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_tenant_id tredisgone;
        passkey_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
        passkey_redis_timeout 1s;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- tcp_listen: $TEST_NGINX_RAND_PORT_3
--- tcp_reply_delay: 3s
--- tcp_reply eval
"+OK\r\n"
--- request eval
"GET /app/bind?api_base_url=http%3A%2F%2F127.0.0.1%3A$ENV{TEST_NGINX_BI_PORT}&tenant_id=tredisgone&realm_id=r1&identity_id=0123456789abcdef&job_id=fedcba9876543210&token=" . ("g" x 48)
--- timeout: 0.3
--- abort
--- ignore_response
--- wait: 1.5
--- error_log
client prematurely closed connection while checking the passkey binding link
--- no_error_log eval
[qr/refused|while checking the binding link/]



=== TEST 18: a redirect URL with a fragment of its own is refused
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_invoke_redirect /app/finish#$arg_job_id;
        passkey_redirect_origins https://app.example.com;
    }
--- response_body
ready
--- error_log eval
qr/"passkey_invoke_redirect" gave a URL that is empty or has a fragment, a space or a control character; the link of job [0-9a-f]{16} was used up/



=== TEST 19: a redirect built from variables may only go to an allowed origin
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_invoke_redirect http://$http_x_to/app/finish?job=$arg_job_id;
        passkey_redirect_origins http://127.0.0.1:$TEST_NGINX_SERVER_PORT;
    }
--- response_body
ready
--- error_log eval
qr/"passkey_invoke_redirect" gave a URL that is not a path here nor of an origin in "passkey_redirect_origins"; the link of job [0-9a-f]{16} was used up/



=== TEST 20: "//host" is another site, whatever its variables
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_invoke_redirect //evil.example.net/app/finish?job=$arg_job_id;
        passkey_redirect_origins http://127.0.0.1:$TEST_NGINX_SERVER_PORT;
    }
--- response_body
ready
--- error_log eval
qr/"passkey_invoke_redirect" gave a URL that is not a path here nor of an origin in "passkey_redirect_origins"; the link of job [0-9a-f]{16} was used up/



=== TEST 21: a redirect with variables needs the list of origins
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_invoke_redirect /app/finish?job=$arg_job_id;
    }
--- must_die
--- error_log
"passkey_invoke_redirect" with variables requires "passkey_redirect_origins"



=== TEST 22: access checks and limits run before the link check
--- http_config
    limit_req_zone $http_x_limit zone=bind:1m rate=1r/m;
--- config
    location = /app/bind {
        limit_req    zone=bind nodelay;
        auth_request /_session;
        passkey_invoke;

        proxy_set_header  X-Passkey-Link  $passkey_binding_link;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }

    location = /denied/bind {
        deny all;
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }

    # the session check: "X-Session: ok" is signed in
    location = /_session {
        internal;
        if ($http_x_session != "ok") {
            return 401;
        }
        return 204;
    }
--- response_body
ready



=== TEST 23: "return" beside passkey_invoke would skip the check
--- config
    location = /app/bind {
        passkey_invoke;
        return 302 /app/finish#$args;
    }
--- must_die
--- error_log
"passkey_invoke" cannot be used with "return", "rewrite", "if", "set" or "break" in location "/app/bind": they run before the link check



=== TEST 24: "rewrite ... last" beside passkey_invoke would skip it too
--- config
    location = /app/bind {
        passkey_invoke;
        rewrite ^ /app/finish last;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- must_die
--- error_log
"passkey_invoke" cannot be used with "return", "rewrite", "if", "set" or "break" in location "/app/bind"
