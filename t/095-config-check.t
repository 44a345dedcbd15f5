# The startup check: once workers run, the first one reads the
# authenticator config of each passkey_invoke location from the API and
# warns when Beyond Identity would send emailed links elsewhere, or when
# trusted_origins would make the browser SDK fail.  It only logs.
#
# Each block sets its tenant's authenticator config at the stand-in
# before nginx starts; the first request lets the check run (the stand-in
# answers it after a pause), the second reads what the API was asked.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';

repeat_each(1);
no_shuffle();
master_on();
workers(2);
log_level('info');

run_tests();

__DATA__

=== TEST 1: the config leads here: one check, by one worker
--- fake_config eval
qq({"invoke_url":"http://localhost:$ENV{TEST_NGINX_SERVER_PORT}/app/",)
. qq("trusted_origins":["http://localhost:$ENV{TEST_NGINX_SERVER_PORT}"]})
--- config
    location = /app/bind {
        passkey_invoke;
        root html;
    }
--- request eval
["GET /fake/sleep?ms=800", "GET /fake/stats"]
--- response_body_like eval
['"slept_ms":800', '"authenticator_config":1,']
--- block_error_log eval
qr/\[notice\] .*passkey: authenticator config "67bb0acf12e5c899" sends emailed links to location "\/app\/bind"/
--- block_no_error_log
[warn]



=== TEST 2: invoke_url leads to another path
--- fake_config eval
qq({"invoke_url":"http://localhost:$ENV{TEST_NGINX_SERVER_PORT}/other",)
. qq("trusted_origins":["http://localhost:$ENV{TEST_NGINX_SERVER_PORT}"]})
--- config
    location = /app/bind {
        passkey_invoke;
        root html;
    }
--- request eval
["GET /fake/sleep?ms=800", "GET /fake/stats"]
--- response_body_like eval
['"slept_ms":800', '"authenticator_config":1,']
--- block_error_log eval
qr/\[warn\] .*passkey: authenticator config "67bb0acf12e5c899" sends emailed links to "http:\/\/localhost:\d+\/other\/bind", and location "\/app\/bind" with "passkey_invoke" does not match that path/
--- block_no_error_log
sends emailed links to location



=== TEST 3: a prefix location that takes the path is good
--- fake_config eval
qq({"invoke_url":"http://localhost:$ENV{TEST_NGINX_SERVER_PORT}/app",)
. qq("trusted_origins":["http://localhost:$ENV{TEST_NGINX_SERVER_PORT}/"]})
--- config
    location /app/ {
        passkey_invoke;
        root html;
    }
--- request eval
["GET /fake/sleep?ms=800", "GET /fake/stats"]
--- response_body_like eval
['"slept_ms":800', '"authenticator_config":1,']
--- block_error_log
sends emailed links to location "/app/"
--- block_no_error_log
[warn]



=== TEST 4: invoke_url names a host this server does not
--- fake_config
{"invoke_url":"https://app.example.com/app","trusted_origins":["https://app.example.com"]}
--- config
    location = /app/bind {
        passkey_invoke;
        root html;
    }
--- request eval
["GET /fake/sleep?ms=800", "GET /fake/stats"]
--- response_body_like eval
['"slept_ms":800', '"authenticator_config":1,']
--- block_error_log
sends emailed links to "https://app.example.com/app/bind", and the server of location "/app/bind" with "passkey_invoke" has no server_name "app.example.com"



=== TEST 5: trusted_origins lack the page's origin and an allowed origin
--- fake_config eval
qq({"invoke_url":"http://localhost:$ENV{TEST_NGINX_SERVER_PORT}/app",)
. qq("trusted_origins":["https://other.example"]})
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_allowed_origins https://shop.example https://other.example;
        root html;
    }
--- request eval
["GET /fake/sleep?ms=800", "GET /fake/stats"]
--- response_body_like eval
['"slept_ms":800', '"authenticator_config":1,']
--- block_error_log eval
[qr/\[warn\] .*authenticator config "67bb0acf12e5c899" lacks "http:\/\/localhost:\d+" in "trusted_origins": the browser SDK will be refused on the page of emailed links/,
 qr/\[warn\] .*authenticator config "67bb0acf12e5c899" lacks "https:\/\/shop.example" of "passkey_allowed_origins" in "trusted_origins"/]
--- block_no_error_log
"https://other.example" of



=== TEST 6: a hosted_web config never sends links here
--- fake_config
{"config_type":"hosted_web"}
--- config
    location = /app/bind {
        passkey_invoke;
        root html;
    }
--- request eval
["GET /fake/sleep?ms=800", "GET /fake/stats"]
--- response_body_like eval
['"slept_ms":800', '"authenticator_config":1,']
--- block_error_log
authenticator config "67bb0acf12e5c899" is not of type "embedded", so Beyond Identity never sends emailed links to location "/app/bind"



=== TEST 7: the application lacks the scope
A 403 is the route's answer: the check asks once, with the one token.
--- fault
{"route":"authenticator_config","type":"status","status":403,"count":0}
--- config
    location = /app/bind {
        passkey_invoke;
        root html;
    }
--- request eval
["GET /fake/sleep?ms=800", "GET /fake/stats"]
--- response_body_like eval
['"slept_ms":800', '"authenticator_config":1,.*"token":1\}']
--- block_error_log eval
qr/\[warn\] .*passkey: cannot read authenticator config "67bb0acf12e5c899" to check location "\/app\/bind": GET \/v1\/\S+ answered 403 "forbidden" "forbidden" \(the application may lack the scope "authenticator-configs:read"\)/



=== TEST 8: without passkey_authenticator_config_id there is nothing to read
--- http_config
    # passkey: no defaults
    passkey_api_url http://127.0.0.1:$TEST_NGINX_BI_PORT;
    passkey_tenant_id @TENANT@;
    passkey_realm_id r1;
    passkey_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    passkey_api_token_file $TEST_NGINX_SECRETS/api_token;
--- config
    location = /app/bind {
        passkey_invoke;
        root html;
    }

    location /fake/ {
        rewrite ^/fake/(.*)$ /__fake/$1?tenant=@TENANT@ break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BI_PORT;
    }
--- request eval
["GET /fake/sleep?ms=500", "GET /fake/stats"]
--- response_body_like eval
['"slept_ms":500', '"authenticator_config":0,']
--- block_error_log
where Beyond Identity sends emailed links is not checked for location "/app/bind": "passkey_authenticator_config_id" is not set



=== TEST 9: no passkey_invoke location, no check
--- config
    location = /passkey/bind {
        passkey_bind;
    }
--- request eval
["GET /fake/sleep?ms=500", "GET /fake/stats"]
--- response_body_like eval
['"slept_ms":500', '"authenticator_config":0,']
--- block_no_error_log
authenticator config
