# Access tokens: one client-credentials request serves many binds; the token
# is renewed before it expires (ahead, in the background: a failed renewal
# reaches no request while the token is used), and once more when the API
# rejects it (401); a 403 is the route's answer and leaves the token alone;
# a static token from a file needs no token endpoint.  The token endpoint
# is on the auth host (passkey_auth_url), not the API host.  Locations
# share a token only when all their settings are the same.  After a failed
# fetch, requests get its failure at once for a back-off; a request waits
# for a fetch no longer than its own calls could take.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';

repeat_each(1);
no_shuffle();

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('more_headers', 'Content-Type: application/json')
        unless defined $block->more_headers;

    if (!defined $block->config || $block->config !~ /passkey_bind/) {
        $block->set_value('config', ($block->config // '') . <<'CONF');
    location = /passkey/bind {
        passkey_bind;
    }
CONF
    }
});

# a static API token from a file instead of client credentials
our $StaticToken = <<'CONF';
    # passkey: no defaults
    passkey_api_url http://127.0.0.1:$TEST_NGINX_BI_PORT;
    passkey_tenant_id @TENANT@;
    passkey_realm_id r1;
    passkey_authenticator_config_id 67bb0acf12e5c899;
    passkey_api_token_file $TEST_NGINX_SECRETS/api_token;
    passkey_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    passkey_delivery_method RETURN;
CONF

sub bind_req {
    my ($user) = @_;
    return "POST /passkey/bind\n{\"username\":\"$user\"}";
}

run_tests();

__DATA__

=== TEST 1: one token request for many binds
--- request eval
[main::bind_req("a1"), main::bind_req("a2"), main::bind_req("a3"),
 main::bind_req("a4"), "GET /fake/stats"]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_body_like eval
[qr/"job_id"/, qr/"job_id"/, qr/"job_id"/, qr/"job_id"/,
 qr/"create_job":4,.*"token":1\}/]



=== TEST 2: the token is renewed before it expires
--- fake_config
{"expires_in":3}
--- request eval
[main::bind_req("b1"), "GET /fake/sleep?ms=2800", main::bind_req("b2"),
 "GET /fake/requests"]
--- error_code eval
[200, 200, 200, 200]
--- response_body_like eval
[qr/"job_id"/, qr/slept/, qr/"job_id"/,
 qr/^(?!.*"status":401)(?=(?:.*"route":"token"){2}).*"route":"create_job"/s]



=== TEST 3: a token the API rejects (401) is renewed and the call retried
--- request eval
[main::bind_req("c1"), "POST /fake/tokens/revoke\n{}", main::bind_req("c2"),
 "GET /fake/stats"]
--- error_code eval
[200, 200, 200, 200]
--- response_body_like eval
[qr/"job_id"/, qr/./, qr/"job_id"/,
 qr/"create_identity":3,"create_job":2,.*"token":2\}/]
--- block_error_log
passkey: API answered 401 to POST /identities, retrying with a new access token



=== TEST 4: a 403 is the route's answer: no new token, no retry
A token that lacks a route's scope (or is for another tenant) is not
mended by a new token of the same application; dropping it would make
every other route fetch one again.
--- fault
{"route":"create_identity","type":"forbidden_once"}
--- request eval
[main::bind_req("d1"), "GET /fake/stats"]
--- error_code eval
[502, 200]
--- response_body_like eval
[qr/"detail":"the Beyond Identity API forbids POST \/identities to this server: its access token lacks a scope or is for another tenant","code":"api_forbidden"/,
 qr/"create_identity":1,.*"token":1\}/]
--- block_error_log
passkey: POST /identities answered 403 "forbidden" "forbidden"
--- no_error_log
retrying with a new access token



=== TEST 5: rejected twice is an error, not a loop
--- fault
{"route":"create_identity","type":"status","status":401,"count":3}
--- request eval
[main::bind_req("e1"), "GET /fake/stats"]
--- error_code eval
[502, 200]
--- response_body_like eval
[qr/"code":"api_unauthorized"/, qr/"create_identity":2,.*"token":2\}/]



=== TEST 6: the token endpoint is down
--- fault
{"route":"token","type":"status","status":503,"count":0}
--- request eval
main::bind_req("f1")
--- error_code: 502
--- response_body_like: "code":"api_unreachable"
--- error_log
answered 503



=== TEST 7: the token endpoint times out
--- config
    location = /passkey/bind {
        passkey_api_timeout 500ms;
        passkey_bind;
    }
--- fault
{"route":"token","type":"delay","delay_ms":2000,"count":0}
--- request eval
main::bind_req("g1")
--- error_code: 504
--- response_body_like: "code":"api_timeout"



=== TEST 8: a token response without expires_in
--- fault
{"route":"token","type":"wrong_shape","count":0}
--- request eval
main::bind_req("h1")
--- error_code: 502
--- response_body_like: "code":"api_bad_response"
--- error_log
lacks access_token or expires_in



=== TEST 9: the token endpoint gets Basic credentials and a form body
--- request eval
[main::bind_req("i1"), "GET /fake/requests"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/"job_id"/,
 qr/\{"body":"grant_type=client_credentials",.*"authorization":"Basic cGFzc2tleS1jbGllbnQ6cGFzc2tleS1zZWNyZXQ=",.*"content-type":"application\/x-www-form-urlencoded".*"path":"\/v1\/tenants\/\w+\/realms\/r1\/applications\/app1\/token"/]



=== TEST 10: the token may come from another realm than the identities
--- config
    location = /passkey/bind {
        passkey_token_realm_id admin;
        passkey_bind;
    }
--- request eval
[main::bind_req("j1"), "GET /fake/requests"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/"job_id"/,
 qr/"path":"\/v1\/tenants\/\w+\/realms\/admin\/applications\/app1\/token".*"path":"\/v1\/tenants\/\w+\/realms\/r1\/identities"/]



=== TEST 11: a static API token read from a file
--- http_config eval: $::StaticToken
--- config
    location = /passkey/bind {
        passkey_bind;
    }
    location = /stats {
        proxy_pass http://127.0.0.1:$TEST_NGINX_BI_PORT/__fake/stats?tenant=@TENANT@;
    }
--- request eval
[main::bind_req("k1"), main::bind_req("k2"), "GET /stats"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[qr/"job_id"/, qr/"job_id"/, qr/"token":0\}/]



=== TEST 12: a rejected static token is final (no retry with the same token)
--- http_config eval: $::StaticToken
--- config
    location = /passkey/bind {
        passkey_bind;
    }
    location = /stats {
        proxy_pass http://127.0.0.1:$TEST_NGINX_BI_PORT/__fake/stats?tenant=@TENANT@;
    }
--- fault
{"route":"create_identity","type":"status","status":401}
--- request eval
[main::bind_req("l1"), "GET /stats"]
--- error_code eval
[502, 200]
--- response_body_like eval
[qr/"code":"api_unauthorized"/, qr/"create_identity":1,/]



=== TEST 13: the token endpoint is on the auth host only, as at Beyond Identity
--- config
    location = /passkey/bind {
        passkey_auth_url http://127.0.0.1:$TEST_NGINX_BI_PORT;
        passkey_bind;
    }
--- request eval
[main::bind_req("m1"), "GET /fake/requests"]
--- error_code eval
[502, 200]
--- response_body_like eval
[qr/"code":"api_credentials_rejected"/,
 qr/"host":"api","method":"POST","path":"\/v1\/[^"]+\/token","query":"","region":0,"route":"wrong_host","status":404/]
--- block_error_log eval
[qr/access token request to "http:\/\/127\.0\.0\.1:$ENV{TEST_NGINX_BI_PORT}\/v1\/\S+" answered 404 "not_found"/]



=== TEST 14: a 403 on one route, bind after bind: one token for them all
The detail names the route without its ids, and the scope that the API's
message names.
--- fault
{"route":"create_job","type":"status","status":403,"body":"{\"code\":\"forbidden\",\"message\":\"missing scope credential-binding-jobs:create\"}","count":0}
--- request eval
[main::bind_req("n1"), main::bind_req("n2"), main::bind_req("n3"),
 main::bind_req("n4"), "GET /fake/stats"]
--- error_code eval
[502, 502, 502, 502, 200]
--- response_body_like eval
[(qr/"status":502,"detail":"the Beyond Identity API forbids POST \/identities\/\{id\}\/credential-binding-jobs to this server \(scope \\"credential-binding-jobs:create\\"\)","code":"api_forbidden"/) x 4,
 qr/"create_identity":4,"create_job":4,.*"token":1\}/]
--- no_error_log
retrying with a new access token



=== TEST 15: a 403 with a static token gives the same answer
--- http_config eval: $::StaticToken
--- fault
{"route":"create_identity","type":"forbidden_once"}
--- request eval
main::bind_req("o1")
--- error_code: 502
--- response_body_like: "code":"api_forbidden"



=== TEST 16: settings that run together alike still get tokens of their own
Tenant "T" with token realm "xadmin" and tenant "Tx" with realm "admin"
read the same when put end to end; each needs its own token (a token of
one tenant gets 403 at the other).
--- config
    location = /a/passkey/bind {
        passkey_token_realm_id xadmin;
        passkey_bind;
    }
    location = /b/passkey/bind {
        passkey_tenant_id @TENANT@x;
        passkey_token_realm_id admin;
        passkey_bind;
    }
    location = /b/stats {
        proxy_pass http://127.0.0.1:$TEST_NGINX_BI_PORT/__fake/stats?tenant=@TENANT@x;
    }
--- request eval
["POST /a/passkey/bind\n{\"username\":\"v1\"}",
 "POST /b/passkey/bind\n{\"username\":\"v2\"}", "GET /fake/stats",
 "GET /b/stats"]
--- error_code eval
[200, 200, 200, 200]
--- response_body_like eval
[qr/"job_id"/, qr/"job_id"/, qr/"create_job":1,.*"token":1\}/,
 qr/"create_job":1,.*"token":1\}/]



=== TEST 17: a failing token endpoint is not asked again at once
After a failed fetch, requests get its failure at once for a back-off
(1 s, then longer): six binds make far fewer token requests.
--- fault
{"route":"token","type":"status","status":503,"count":0}
--- request eval
[map({ main::bind_req("q$_") } 1 .. 6), "GET /fake/stats"]
--- error_code eval
[(502) x 6, 200]
--- response_body_like eval
[(qr/"code":"api_unreachable"/) x 6,
 qr/"create_identity":0,.*"token":[1-4]\}/]
--- block_error_log eval
[qr/passkey: access token requests to "\S+" are paused for 1000 ms/,
 qr/passkey: POST \/identities failed: access token requests are paused for \d+ ms after 1 failure in a row/]



=== TEST 18: rejected credentials are not sent again at once either
--- config
    location = /passkey/bind {
        passkey_client_secret_file $TEST_NGINX_SECRETS/wrong_secret;
        passkey_bind;
    }
--- request eval
[main::bind_req("r1"), main::bind_req("r2"), main::bind_req("r3"),
 "GET /fake/stats"]
--- error_code eval
[502, 502, 502, 200]
--- response_body_like eval
[(qr/"code":"api_credentials_rejected"/) x 3, qr/"token":[12]\}/]



=== TEST 19: after the back-off, the token endpoint is asked again
The fetch at worker start fails a little late, so that the first bind
sees the failure whether it waited for that fetch or came after it.
--- fault
{"route":"token","type":"status","status":503,"delay_ms":500}
--- request eval
[main::bind_req("s1"), "GET /fake/stats", "GET /fake/sleep?ms=1100",
 main::bind_req("s2"), "GET /fake/stats"]
--- error_code eval
[502, 200, 200, 200, 200]
--- response_body_like eval
[qr/"code":"api_unreachable"/, qr/"token":1\}/, qr/slept/, qr/"job_id"/,
 qr/"create_identity":1,.*"token":2\}/]



=== TEST 20: a request waits for a token no longer than its own calls could
The fetch with the first secret is rejected after 1.6 s, the one with the
second secret takes 1.6 s more; the bind gives up after the connect
timeout and the timeout (2.2 s), and the fetch goes on for later binds.
--- fake_config
{"client_secrets":["passkey-secret","passkey-secret-2"]}
--- fault
{"route":"token","type":"status","status":401,"body":"{\"error\":\"invalid_client\"}","delay_ms":1600}
{"route":"token","type":"delay","delay_ms":1600}
--- config
    location = /passkey/bind {
        passkey_client_secret_file $TEST_NGINX_SECRETS/client_secret
                                   $TEST_NGINX_SECRETS/client_secret2;
        passkey_api_connect_timeout 200ms;
        passkey_api_timeout 2s;
        passkey_bind;
    }
--- request eval
[main::bind_req("t1"), "GET /fake/sleep?ms=1500", main::bind_req("t2"),
 "GET /fake/stats"]
--- timeout: 10
--- error_code eval
[504, 200, 200, 200]
--- response_body_like eval
[qr/"code":"api_timeout"/, qr/slept/, qr/"job_id"/,
 qr/"create_identity":1,.*"token":2\}/]
--- block_error_log
passkey: POST /identities failed: no access token within passkey_api_connect_timeout and passkey_api_timeout



=== TEST 21: a failed renewal reaches no request while the token is used
The 6 s token is renewed from 3 s on and used until 5.4 s. Its renewal
fails (503): binds go on with it meanwhile, without waiting and without
asking again during the back-off, and get the failure only once the
token is no longer used and none can be fetched.
--- fake_config
{"expires_in":6}
--- request eval
[main::bind_req("u1"),
 "POST /fake/faults\n{\"route\":\"token\",\"type\":\"status\",\"status\":503,\"count\":0}",
 "GET /fake/sleep?ms=3200", main::bind_req("u2"), main::bind_req("u3"),
 "GET /fake/stats", "GET /fake/sleep?ms=2400", main::bind_req("u4"),
 "GET /fake/stats"]
--- timeout: 10
--- error_code eval
[200, 200, 200, 200, 200, 200, 200, 502, 200]
--- response_body_like eval
[qr/"job_id"/, qr/"ok":true/, qr/slept/, qr/"job_id"/, qr/"job_id"/,
 qr/"create_job":3,.*"token":2\}/, qr/slept/, qr/"code":"api_unreachable"/,
 qr/"create_job":3,.*"token":3\}/]
--- block_error_log eval
[qr/passkey: access token requests to "\S+" are paused for 1000 ms/,
 qr/passkey: access token requests to "\S+" are paused for 2000 ms/]



=== TEST 22: the token endpoint's Retry-After lengthens the back-off
It asks for 3 s, longer than the first back-off (1 s): a bind after
1.5 s still gets the failure at once, and the endpoint is not asked again.
--- fault
{"route":"token","type":"status","status":429,"retry_after":"3","count":0}
--- request eval
[main::bind_req("w1"), "GET /fake/sleep?ms=1500", main::bind_req("w2"),
 "GET /fake/stats"]
--- error_code eval
[502, 200, 502, 200]
--- response_body_like eval
[qr/"code":"api_unreachable"/, qr/slept/, qr/"code":"api_unreachable"/,
 qr/"create_identity":0,.*"token":1\}/]
--- block_error_log eval
[qr/passkey: access token requests to "\S+" are paused for 3000 ms/,
 qr/passkey: POST \/identities failed: access token requests are paused for \d+ ms after 1 failure in a row/]
