# A server whose only passkey location is passkey_invoke still gets its
# Redis connection and its API client: the check answers from Redis and
# the API, not 503; and it needs API credentials.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: a server whose only passkey location is passkey_invoke
--- http_config
    # passkey: no defaults
    passkey_api_url http://127.0.0.1:$TEST_NGINX_BI_PORT;
    passkey_tenant_id invokeonly;
    passkey_realm_id r1;
    passkey_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    passkey_redis_prefix test:invokeonly:;
    passkey_api_token_file $TEST_NGINX_SECRETS/api_token;
--- config
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BI_PORT/__fake/health;
    }
--- request eval
"GET /app/bind?api_base_url=http%3A%2F%2F127.0.0.1%3A$ENV{TEST_NGINX_BI_PORT}&tenant_id=invokeonly&realm_id=r1&identity_id=0123456789abcdef&job_id=fedcba9876543210&token=abcdef"
--- more_headers
Accept: application/json
--- error_code: 404
--- response_body_like: "code":"unknown_job"



=== TEST 2: the link check asks the API, so it needs credentials
--- http_config
    # passkey: no defaults
    passkey_api_url http://127.0.0.1:$TEST_NGINX_BI_PORT;
    passkey_tenant_id invokeonly;
    passkey_realm_id r1;
    passkey_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BI_PORT/__fake/health;
    }
--- must_die
--- error_log
"passkey_invoke" requires "passkey_client_id" or "passkey_api_token_file"
