# The binding-job endpoint: new and existing identities, the creation race,
# the exact API requests, variables, and input validation.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';

repeat_each(1);
no_shuffle();

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->more_headers) {
        $block->set_value('more_headers', 'Content-Type: application/json');
    }

    if (!defined $block->config || $block->config !~ /passkey_bind/) {
        $block->set_value('config', ($block->config // '') . <<'CONF');
    location = /passkey/bind {
        passkey_bind;
    }
CONF
    }
});

run_tests();

__DATA__

=== TEST 1: an existing identity is found and reused
Authenticated mode looks the user up first: no create, no 409.
--- config
    location = /passkey/bind {
        # the user a trusted upstream vouches for
        passkey_bind_mode authenticated;
        passkey_username $http_x_user;
        passkey_bind;
    }
--- more_headers
Content-Type: application/json
X-User: bob
--- request eval
["POST /fake/identities\n{\"realm\":\"r1\",\"username\":\"bob\",\"email\":\"bob\@example.com\"}",
 "POST /passkey/bind\n{\"username\":\"Bob\"}",
 "GET /fake/stats"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[qr/"id":"([0-9a-f]{16})"/,
 qr/^\{"job_id":"[0-9a-f]{16}","identity_id":"[0-9a-f]{16}","state":"LINK_SENT"/,
 qr/"create_identity":0,"create_job":1,.*"list_identities":1,.*"token":1/]
--- redis_job
username: ^bob$



=== TEST 2: the identity id found is the one the job is created for
--- config
    location = /passkey/bind {
        # the user a trusted upstream vouches for
        passkey_bind_mode authenticated;
        passkey_username $http_x_user;
        passkey_bind;
    }
--- more_headers
Content-Type: application/json
X-User: carol
--- request eval
["POST /fake/identities\n{\"realm\":\"r1\",\"username\":\"carol\"}",
 "POST /passkey/bind\n{\"username\":\"carol\"}",
 "GET /fake/requests"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[qr/"id":"[0-9a-f]{16}"/,
 qr/"identity_id":"[0-9a-f]{16}"/,
 qr/"method":"POST","path":"\/v1\/tenants\/\w+\/realms\/r1\/identities\/[0-9a-f]{16}\/credential-binding-jobs"/]



=== TEST 3: the lookup filter is JSON-quoted and percent-encoded
--- config
    location = /passkey/bind {
        # the user a trusted upstream vouches for
        passkey_bind_mode authenticated;
        passkey_username $http_x_user;
        passkey_bind;
    }
--- more_headers
Content-Type: application/json
X-User: dan "the" man
--- request eval
["POST /fake/identities\n{\"realm\":\"r1\",\"username\":\"dan \\\"the\\\" man\"}",
 "POST /passkey/bind\n{\"username\":\"dan \\\"the\\\" man\"}",
 "GET /fake/requests"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[qr/"id"/,
 qr/"job_id"/,
 qr/"query":"filter=traits.username%20eq%20%22dan%20%5C%22the%5C%22%20man%22"/]



=== TEST 4: two users racing for one username both get a job (409, then look up)
The lookup finds no one; the create then meets the other's identity (409)
and the second lookup finds it.
--- config
    location = /passkey/bind {
        # the user a trusted upstream vouches for
        passkey_bind_mode authenticated;
        passkey_username $http_x_user;
        passkey_bind;
    }
--- more_headers
Content-Type: application/json
X-User: erin
--- request eval
["POST /fake/faults\n{\"route\":\"create_identity\",\"type\":\"race\"}",
 "POST /passkey/bind\n{\"username\":\"erin\"}",
 "GET /fake/stats"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[qr/./,
 qr/"job_id":"[0-9a-f]{16}"/,
 qr/"create_identity":1,"create_job":1,.*"list_identities":2/]



=== TEST 5: the API receives the bearer token, JSON and the exact bodies
--- request eval
["POST /passkey/bind\n{\"username\":\"frank\",\"email\":\"frank\@example.com\",\"display_name\":\"Frank F\"}",
 "GET /fake/requests"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/"job_id"/,
 qr/"body":"\{\\"identity\\":\{\\"display_name\\":\\"Frank F\\",\\"traits\\":\{\\"type\\":\\"traits_v0\\",\\"username\\":\\"frank\\",\\"primary_email_address\\":\\"frank\@example.com\\"\}\}\}".*"content-type":"application\/json".*"body":"\{\\"job\\":\{\\"delivery_method\\":\\"RETURN\\",\\"authenticator_config_id\\":\\"67bb0acf12e5c899\\"\}\}"/s]



=== TEST 6: job variables for logs and headers
--- config
    location = /passkey/bind {
        passkey_bind;
        add_header X-Job-Id $passkey_job_id always;
        add_header X-Identity-Id $passkey_identity_id always;
        add_header X-Job-State $passkey_job_state always;
        add_header X-Json-User $passkey_json_username always;
    }
--- request
POST /passkey/bind
{"username":"gina"}
--- error_code: 200
--- response_headers_like
X-Job-Id: ^[0-9a-f]{16}$
X-Identity-Id: ^[0-9a-f]{16}$
X-Job-State: ^LINK_SENT$
X-Json-User: ^gina$



=== TEST 7: the display name defaults to the username
--- request eval
["POST /passkey/bind\n{\"username\":\"hank\"}",
 "GET /fake/identities?realm=r1"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/"job_id"/, qr/"display_name":"hank"/]



=== TEST 8: GET is not allowed
--- request
GET /passkey/bind
--- error_code: 405
--- response_headers
Allow: POST
Content-Type: application/problem+json
Cache-Control: no-store
--- response_body_like chomp
^\{"type":"urn:ngx-passkey:problem:method_not_allowed","title":"Method Not Allowed","status":405,"code":"method_not_allowed","request_id":"[0-9a-f]{32}"\}$
--- error_log
passkey: method GET not allowed



=== TEST 9: a form body is refused
--- request
POST /passkey/bind
username=alice
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- error_code: 415
--- response_body_like: "code":"unsupported_media_type"
--- error_log
passkey: unsupported content type "application/x-www-form-urlencoded"



=== TEST 10: JSON with a charset parameter is accepted
--- request
POST /passkey/bind
{"username":"ivan"}
--- more_headers
Content-Type: application/json; charset=utf-8
--- error_code: 200
--- response_body_like: "job_id"



=== TEST 11: a body over passkey_max_body_size
--- config
    location = /passkey/bind {
        passkey_max_body_size 64;
        passkey_bind;
    }
--- request eval
"POST /passkey/bind\n{\"username\":\"" . ("x" x 100) . "\"}"
--- error_code: 413
--- response_body_like: "code":"body_too_large"
--- error_log
passkey_max_body_size 64



=== TEST 12: a body that is not JSON
--- request
POST /passkey/bind
{"username":
--- error_code: 400
--- response_body_like: "code":"invalid_json"
--- error_log
passkey: invalid_json



=== TEST 13: a JSON array is not an object
--- request
POST /passkey/bind
["alice"]
--- error_code: 400
--- response_body_like: "code":"invalid_json"



=== TEST 14: no username
--- request
POST /passkey/bind
{"email":"a@example.com"}
--- error_code: 400
--- response_body_like: "code":"missing_username"



=== TEST 15: a username that is not a string
--- request
POST /passkey/bind
{"username":42}
--- error_code: 400
--- response_body_like: "code":"invalid_username","request_id"



=== TEST 16: forbidden characters in the username
--- request eval
[map { "POST /passkey/bind\n{\"username\":\"a${_}b\"}" }
     ('{', '}', '[', ']', '<', '>', ';', ':', '?', '\\\\', '/', '|', '*', '^',
      '%', '$', '#', '=', '~', '`', '!', '\\t')]
--- error_code eval
[(400) x 22]
--- response_body_like eval
[(qr/"code":"invalid_username"/) x 22]



=== TEST 17: 64 characters is the limit, counted in characters
--- request eval
["POST /passkey/bind\n{\"username\":\"" . ("\xc3\xa9" x 64) . "\"}",
 "POST /passkey/bind\n{\"username\":\"" . ("x" x 65) . "\"}"]
--- error_code eval
[200, 400]
--- response_body_like eval
[qr/"job_id"/, qr/"code":"invalid_username"/]



=== TEST 18: invalid email addresses
--- request eval
[map { "POST /passkey/bind\n{\"username\":\"jo\",\"email\":\"$_\"}" }
     ('jo', 'jo@', '@example.com', 'jo@example', 'jo@@example.com',
      'jo @example.com', 'jo@.example.com', 'jo@example..com')]
--- error_code eval
[(400) x 8]
--- response_body_like eval
[(qr/"code":"invalid_email"/) x 8]



=== TEST 19: an invalid display name
--- request
POST /passkey/bind
{"username":"kim","display_name":"<script>"}
--- error_code: 400
--- response_body_like: "code":"invalid_display_name"



=== TEST 20: invalid input never reaches the API
--- request eval
["POST /passkey/bind\n{\"username\":\"a/b\"}",
 "GET /fake/stats"]
--- error_code eval
[400, 200]
--- response_body_like eval
[qr/invalid_username/,
 qr/"create_identity":0,"create_job":0,.*"list_identities":0,/]



=== TEST 21: an email that is not ASCII, from a variable
--- config
    location = /passkey/bind {
        passkey_email $http_x_email;
        passkey_bind;
    }
--- more_headers eval
"Content-Type: application/json\r\nX-Email: \xffjo\@example.com"
--- request
POST /passkey/bind
{"username":"jo"}
--- error_code: 400
--- response_body_like: "code":"invalid_email"



=== TEST 22: a token in the query string is never logged
nginx's own debug lines show the request as it came (so never run
production at "debug"); the module's lines and the access log do not.
--- request
GET /passkey/bind?job_id=c4fc2d753ca22b14&token=tok.en.in.the.qu.ery
--- error_code: 405
--- error_log
passkey: method GET not allowed
--- no_error_log eval
[qr/^(?!.*\[debug\]).*tok\.en\.in\.the/]
--- no_access_log
tok.en.in.the



=== TEST 23: no body at all when every input comes from variables
--- config
    location = /passkey/bind {
        passkey_username $http_x_user;
        passkey_bind;
    }
--- more_headers
Content-Type: application/json
X-User: nobody-body
--- request
POST /passkey/bind
--- error_code: 200
--- response_body_like: "job_id"
--- redis_job
username: ^nobody-body$



=== TEST 23a: no body needs the JSON type too: a form cannot send it cross-site
--- config
    location = /passkey/bind {
        passkey_username $http_x_user;
        passkey_bind;
    }
--- more_headers
X-User: nobody-body
--- request eval
["POST /passkey/bind", "GET /fake/stats"]
--- error_code eval
[415, 200]
--- response_body_like eval
[qr/"code":"unsupported_media_type"/, qr/"create_identity":0,"create_job":0,/]



=== TEST 24: a body without a content type is refused
--- more_headers
X-Nothing: 1
--- request
POST /passkey/bind
{"username":"typeless"}
--- error_code: 415
--- response_body_like: "code":"unsupported_media_type"
