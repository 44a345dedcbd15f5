# passkey_health: 200 {"status":"ok"} when Redis answers a PING and an
# access token is valid or can be fetched; 503 "down" when Redis is not
# there or hangs, or the token endpoint refuses or fails; 200 "degraded"
# without Redis under passkey_redis_down allow.  The answer names no
# secret, address or error text.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use IO::Socket::INET;

repeat_each(1);
no_shuffle();

# a socket that listens but never answers: a Redis that hangs
our $Hung = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1:0')
    or die "cannot listen: $!";
$ENV{TEST_NGINX_HUNG_PORT} = $Hung->sockport;

add_block_preprocessor(sub {
    my $block = shift;

    return if $block->must_die || defined $block->config;

    $block->set_value('config', <<'CONF');
    location = /health {
        passkey_health;
    }
CONF
});

run_tests();

__DATA__

=== TEST 1: Redis answers and the token is valid
--- request
GET /health
--- error_code: 200
--- response_headers
Content-Type: application/json
Cache-Control: no-store
--- response_body_like
^\{"status":"ok","redis":"ok","token":"(valid|fetched)"\}$



=== TEST 2: HEAD answers the same status
--- request
HEAD /health
--- error_code: 200
--- response_body



=== TEST 3: nothing listens at the Redis address: 503 down
--- config
    location = /health {
        passkey_redis 127.0.0.1:1;
        passkey_health;
    }
--- request
GET /health
--- error_code: 503
--- response_body_like
^\{"status":"down","redis":"unavailable","token":"(valid|fetched)"\}$
--- error_log
passkey health: redis unavailable



=== TEST 4: Redis hangs: the PING times out within passkey_redis_timeout
--- config
    location = /health {
        passkey_redis 127.0.0.1:$TEST_NGINX_HUNG_PORT;
        passkey_redis_timeout 300ms;
        passkey_health;
    }
--- request
GET /health
--- error_code: 503
--- response_body_like
^\{"status":"down","redis":"timeout","token":"(valid|fetched)"\}$
--- timeout: 3



=== TEST 5: without Redis, passkey_redis_down allow is degraded, not down
--- config
    location = /health {
        passkey_redis 127.0.0.1:1;
        passkey_redis_down allow;
        passkey_health;
    }
--- request
GET /health
--- error_code: 200
--- response_body_like
^\{"status":"degraded","redis":"unavailable","token":"(valid|fetched)"\}$



=== TEST 6: the token endpoint refuses the credentials: 503 down
--- fault
{"route":"token","type":"status","status":401,"count":0}
--- request
GET /health
--- error_code: 503
--- response_body_like
^\{"status":"down","redis":"ok","token":"rejected"\}$



=== TEST 7: the token endpoint fails: 503 down
--- fault
{"route":"token","type":"status","status":503,"count":0}
--- request
GET /health
--- error_code: 503
--- response_body_like
^\{"status":"down","redis":"ok","token":"failed"\}$



=== TEST 8: the token endpoint is slow: the check waits for the token
--- fault
{"route":"token","type":"delay","delay_ms":2000}
--- request eval
["GET /health", "GET /fake/stats"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/^\{"status":"ok","redis":"ok","token":"fetched"\}$/, qr/"token":1\}/]
--- timeout: 5



=== TEST 9: the token endpoint does not answer in time: 503 down
--- http_config
    passkey_api_connect_timeout 200ms;
    passkey_api_timeout 300ms;
--- fault
{"route":"token","type":"delay","delay_ms":3000,"count":0}
--- request
GET /health
--- error_code: 503
--- response_body_like
^\{"status":"down","redis":"ok","token":"timeout"\}$
--- timeout: 5



=== TEST 10: a static token
--- http_config
    # passkey: no defaults
    passkey_api_url http://127.0.0.1:$TEST_NGINX_BI_PORT;
    passkey_tenant_id @TENANT@;
    passkey_realm_id r1;
    passkey_api_token_file $TEST_NGINX_SECRETS/api_token;
    passkey_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- request
GET /health
--- error_code: 200
--- response_body_like
^\{"status":"ok","redis":"ok","token":"static"\}$



=== TEST 11: only GET and HEAD
--- request
POST /health
--- error_code: 405
--- response_headers
Allow: GET, HEAD
--- response_body_like: "code":"method_not_allowed"



=== TEST 12: the check needs Redis
--- http_config
    # passkey: no defaults
    passkey_tenant_id t1;
    passkey_realm_id r1;
    passkey_api_token_file $TEST_NGINX_SECRETS/api_token;
--- config
    location = /health {
        passkey_health;
    }
--- must_die
--- error_log
"passkey_health" requires "passkey_redis"



=== TEST 13: the check needs API credentials
--- http_config
    # passkey: no defaults
    passkey_tenant_id t1;
    passkey_realm_id r1;
    passkey_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /health {
        passkey_health;
    }
--- must_die
--- error_log
"passkey_health" requires "passkey_client_id" or "passkey_api_token_file"



=== TEST 14: one passkey handler per location
--- config
    location = /health {
        passkey_health;
        passkey_metrics;
    }
--- must_die
--- error_log
only one passkey handler may be used in a location
