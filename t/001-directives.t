# Configuration errors stop nginx at start ("nginx -t") with a message that
# names the directive and the bad value; good configurations load.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep);

repeat_each(1);
no_shuffle();

# "--- curl_shim: WHAT": nginx runs with t/lib/curl-shim.c preloaded, a
# libcurl that lacks WHAT (see there).  Test::Nginx puts LD_PRELOAD back
# as it found it before it starts nginx, and preloads what
# TEST_NGINX_LD_PRELOAD names in front of it: in front of the nginx
# command, which under valgrind is valgrind's program, so these blocks
# are skipped there (they check what nginx -t says, not memory).
my $shim = tempdir(CLEANUP => 1) . '/curl-shim.so';
system("cc -shared -fPIC -o $shim t/lib/curl-shim.c -ldl") == 0
    or die "cannot build t/lib/curl-shim.c\n";

my $preload = $ENV{TEST_NGINX_LD_PRELOAD};

add_block_preprocessor(sub {
    my $block = shift;

    if (defined $block->curl_shim && $ENV{TEST_NGINX_USE_VALGRIND}) {
        $block->set_value('skip_eval', '1: 1');

    } elsif (defined $block->curl_shim) {
        $ENV{TEST_NGINX_LD_PRELOAD} = join ' ', grep { defined } $shim,
                                                              $preload;
        $ENV{PASSKEY_CURL_SHIM} = $block->curl_shim;
        return;
    }

    delete $ENV{PASSKEY_CURL_SHIM};

    if (defined $preload) {
        $ENV{TEST_NGINX_LD_PRELOAD} = $preload;

    } else {
        delete $ENV{TEST_NGINX_LD_PRELOAD};
    }
});

# sends HUP to the running nginx and waits until it has read the new
# configuration (or refused it)
sub reload_and_wait {
    my $root = $ENV{TEST_NGINX_SERVROOT} || 't/servroot';
    my $pid = nginx_pid();

    kill 'HUP', $pid or die "cannot signal nginx $pid: $!";

    for (1 .. 300) {
        open my $log, '<', "$root/logs/error.log" or die "no error log: $!";
        my $text = do { local $/; <$log> };
        return if $text =~ /master_process off|reconfiguring.*\n.*\n.*\n/;
        sleep 0.1;
    }

    die "nginx did not read the configuration again";
}

run_tests();

# "nginx -T" prints the configuration: file names of secrets, never secrets
{
    my $conf = ($ENV{TEST_NGINX_SERVROOT} || 't/servroot') . '/conf/nginx.conf';
    my $bin = $ENV{TEST_NGINX_BINARY} || 'nginx';
    my $dump = `$bin -T -q -c $conf 2>&1`;
    like($dump, qr/passkey_client_secret_file \S+client_secret;/,
         "nginx -T shows the secret file name");
    unlike($dump, qr/passkey-secret/, "nginx -T does not show the secret");
}

__DATA__

=== TEST 1: a complete configuration loads
--- config
    location = /passkey/bind {
        passkey_bind;
    }
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok



=== TEST 2: passkey_bind without a tenant
--- http_config
    # passkey: no defaults
    passkey_realm_id r1;
    passkey_authenticator_config_id ac1;
--- config
    location = /passkey/bind {
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_bind" requires "passkey_tenant_id"



=== TEST 3: passkey_bind without redis
--- http_config
    # passkey: no defaults
    passkey_tenant_id t1;
    passkey_realm_id r1;
    passkey_authenticator_config_id ac1;
    passkey_api_token_file $TEST_NGINX_SECRETS/api_token;
--- config
    location = /passkey/bind {
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_bind" requires "passkey_redis"



=== TEST 4: passkey_bind without any credentials
--- http_config
    # passkey: no defaults
    passkey_tenant_id t1;
    passkey_realm_id r1;
    passkey_authenticator_config_id ac1;
    passkey_redis 127.0.0.1:6379;
--- config
    location = /passkey/bind {
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_bind" requires "passkey_client_id" or "passkey_api_token_file"



=== TEST 5: client credentials without an application id
--- http_config
    # passkey: no defaults
    passkey_tenant_id t1;
    passkey_realm_id r1;
    passkey_authenticator_config_id ac1;
    passkey_redis 127.0.0.1:6379;
    passkey_client_id c1;
    passkey_client_secret_file $TEST_NGINX_SECRETS/client_secret;
--- config
    location = /passkey/bind {
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_bind" requires "passkey_application_id"



=== TEST 6: a static token and client credentials together
--- http_config
    passkey_api_token_file $TEST_NGINX_SECRETS/api_token;
--- config
    location = /passkey/bind {
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_api_token_file" cannot be combined with "passkey_client_id"



=== TEST 7: an API URL that is not http(s)
--- http_config
    # passkey: no defaults
    passkey_api_url ftp://example.com;
--- config
--- must_die
--- error_log
invalid URL "ftp://example.com" in "passkey_api_url": expected http:// or https://



=== TEST 8: a URL with a query string
--- http_config
    # passkey: no defaults
    passkey_auth_url https://auth.example.com/?x=1;
--- config
--- must_die
--- error_log
invalid URL "https://auth.example.com/?x=1" in "passkey_auth_url": no query, fragment or spaces allowed



=== TEST 9: an id with characters that do not belong in a URL path
--- http_config
    # passkey: no defaults
    passkey_tenant_id "a/../b";
--- config
--- must_die
--- error_log
invalid value "a/../b" in "passkey_tenant_id": expected 1 to 128 letters, digits, "-" or "_"



=== TEST 10: a duplicate directive
--- http_config
    # passkey: no defaults
    passkey_realm_id r1;
    passkey_realm_id r2;
--- config
--- must_die
--- error_log
"passkey_realm_id" directive is duplicate



=== TEST 11: a missing secret file
--- http_config
    # passkey: no defaults
    passkey_client_secret_file /nonexistent/secret;
--- config
--- must_die
--- error_log
"passkey_client_secret_file": cannot open secret file "/nonexistent/secret"



=== TEST 12: a redis host name needs a resolver (resolving it would block)
--- config
    location = /passkey/bind {
        passkey_redis localhost:6379;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_redis" "localhost:6379" names a host: it needs a "resolver" in this location or above



=== TEST 13: a redis address without a port
--- http_config
    # passkey: no defaults
    passkey_redis 127.0.0.1;
--- config
--- must_die
--- error_log
invalid address "127.0.0.1" in "passkey_redis": expected host:port or unix:/path



=== TEST 14: an unknown redis parameter
--- http_config
    # passkey: no defaults
    passkey_redis 127.0.0.1:6379 db=1;
--- config
--- must_die
--- error_log
invalid parameter "db=1" in "passkey_redis"



=== TEST 15: a bad timeout
--- http_config
    # passkey: no defaults
    passkey_api_timeout soon;
--- config
--- must_die
--- error_log
"passkey_api_timeout" directive invalid value



=== TEST 16: passkey_bind outside a location
--- http_config
    # passkey: no defaults
    passkey_bind;
--- config
--- must_die
--- error_log
"passkey_bind" directive is not allowed here



=== TEST 17: settings are inherited from http to server to location
--- http_config
    # passkey: no defaults
    passkey_api_url http://127.0.0.1:$TEST_NGINX_BI_PORT;
    passkey_auth_url http://127.0.0.1:$TEST_NGINX_BI_AUTH_PORT;
    passkey_realm_id r1;
    passkey_authenticator_config_id 67bb0acf12e5c899;
    passkey_application_id app1;
    passkey_client_id passkey-client;
    passkey_client_secret_file $TEST_NGINX_SECRETS/client_secret;
    passkey_delivery_method RETURN;
--- config
    passkey_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;

    location /outer/ {
        passkey_tenant_id inherit17;

        location = /outer/bind {
            passkey_bind;
        }
    }
--- request
POST /outer/bind
{"username":"inherit"}
--- more_headers
Content-Type: application/json
--- error_code: 200
--- response_body_like: "credential_binding_link":"http://127\.0\.0\.1:\d+/v1/tenants/inherit17/realms/r1/



=== TEST 18: username, email and display name from variables
--- config
    location = /passkey/bind {
        passkey_username $http_x_user;
        passkey_email $http_x_email;
        passkey_display_name "User $http_x_user";
        passkey_bind;
    }
--- request eval
["POST /passkey/bind\n{\"username\":\"ignored\"}",
 "GET /fake/identities?realm=r1"]
--- more_headers
Content-Type: application/json
X-User: fromheader
X-Email: from@example.com
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/"job_id"/,
 qr/"display_name":"User fromheader".*"primary_email_address":"from\@example\.com".*"username":"fromheader"/]



=== TEST 19: a zero API timeout
--- http_config
    # passkey: no defaults
    passkey_api_timeout 0;
--- config
--- must_die
--- error_log
"passkey_api_timeout" must be between 1ms and 10m, not "0"



=== TEST 20: passkey_api_verify takes on or off
--- http_config
    # passkey: no defaults
    passkey_api_verify yes;
--- config
--- must_die
--- error_log
invalid value "yes" in "passkey_api_verify" directive, it must be "on" or "off"



=== TEST 21: a bad size
--- http_config
    # passkey: no defaults
    passkey_max_body_size lots;
--- config
--- must_die
--- error_log
"passkey_max_body_size" directive invalid value



=== TEST 22: a redis timeout out of bounds
--- http_config
    # passkey: no defaults
    passkey_redis_timeout 0;
--- config
--- must_die
--- error_log
"passkey_redis_timeout" must be between 1ms and 60s, not "0"



=== TEST 23: a redis database out of range
--- http_config
    # passkey: no defaults
    passkey_redis 127.0.0.1:6379 database=x;
--- config
--- must_die
--- error_log
invalid parameter "database=x" in "passkey_redis"



=== TEST 24: a blank secret file
--- http_config
    # passkey: no defaults
    passkey_api_token_file /dev/null;
--- config
--- must_die
--- error_log eval
qr/"passkey_api_token_file": secret file "\/dev\/null" must hold 1 to 4096 bytes/



=== TEST 25: passkey_username needs a value
--- http_config
    # passkey: no defaults
    passkey_username;
--- config
--- must_die
--- error_log
invalid number of arguments in "passkey_username" directive



=== TEST 26: a zero API buffer cannot hold any answer
--- http_config
    # passkey: no defaults
    passkey_api_buffer_size 0;
--- config
--- must_die
--- error_log
"passkey_api_buffer_size" must be between 1k and 16m, not "0"



=== TEST 27: an API buffer too large
--- http_config
    # passkey: no defaults
    passkey_api_buffer_size 17m;
--- config
--- must_die
--- error_log
"passkey_api_buffer_size" must be between 1k and 16m, not "17m"



=== TEST 28: a zero connect timeout
--- http_config
    # passkey: no defaults
    passkey_api_connect_timeout 0;
--- config
--- must_die
--- error_log
"passkey_api_connect_timeout" must be between 1ms and 10m, not "0"



=== TEST 29: an API timeout of an hour
--- http_config
    # passkey: no defaults
    passkey_api_timeout 1h;
--- config
--- must_die
--- error_log
"passkey_api_timeout" must be between 1ms and 10m, not "1h"



=== TEST 30: a zero body size ("0" is not "no limit" here)
--- http_config
    # passkey: no defaults
    passkey_max_body_size 0;
--- config
--- must_die
--- error_log
"passkey_max_body_size" must be between 2 and 1m, not "0"



=== TEST 31: a body size over 1m
--- http_config
    # passkey: no defaults
    passkey_max_body_size 2m;
--- config
--- must_die
--- error_log
"passkey_max_body_size" must be between 2 and 1m, not "2m"



=== TEST 32: a zero cooldown must be written "off"
--- http_config
    # passkey: no defaults
    passkey_email_cooldown 0;
--- config
--- must_die
--- error_log
invalid value "0" in "passkey_email_cooldown": expected a time such as 10s, 5m, 24h, or "off"



=== TEST 33: a cooldown over a week
--- http_config
    # passkey: no defaults
    passkey_email_cooldown 8d;
--- config
--- must_die
--- error_log
"passkey_email_cooldown" must be "off" or between 1ms and 7d, not "8d"



=== TEST 34: idempotency over a week
--- http_config
    # passkey: no defaults
    passkey_idempotency 30d;
--- config
--- must_die
--- error_log
"passkey_idempotency" must be "off" or between 1ms and 7d, not "30d"



=== TEST 35: a duplicate window over an hour
--- http_config
    # passkey: no defaults
    passkey_duplicate_window 2h;
--- config
--- must_die
--- error_log
"passkey_duplicate_window" must be "off" or between 1ms and 1h, not "2h"



=== TEST 36: a job refresh interval over a day
--- http_config
    # passkey: no defaults
    passkey_job_refresh_interval 2d;
--- config
--- must_die
--- error_log
"passkey_job_refresh_interval" must be between 0 and 24h, not "2d"



=== TEST 37: the bounds themselves load
--- http_config
    passkey_api_buffer_size 16m;
    passkey_api_connect_timeout 10m;
    passkey_max_body_size 1m;
    passkey_email_cooldown 7d;
    passkey_idempotency 7d;
    passkey_duplicate_window 1h;
    passkey_job_refresh_interval 0;
--- config
    location = /passkey/bind {
        passkey_api_timeout 10m;
        passkey_redis_timeout 60s;
        passkey_bind;
    }
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok



=== TEST 38: a trusted certificate file that does not exist
--- http_config
    # passkey: no defaults
    passkey_api_trusted_certificate /nonexistent/ca.pem;
--- config
--- must_die
--- error_log
"passkey_api_trusted_certificate": cannot read "/nonexistent/ca.pem" (2: No such file or directory)



=== TEST 39: a trusted certificate file without a certificate (a key)
--- http_config
    # passkey: no defaults
    passkey_api_trusted_certificate $TEST_NGINX_TLS_DIR/ca.key;
--- config
--- must_die
--- error_log eval
qr/"passkey_api_trusted_certificate": "\Q$ENV{TEST_NGINX_TLS_DIR}\E\/ca\.key" holds no PEM certificate/



=== TEST 40: a certificate OpenSSL cannot read
--- user_files
>>> broken.pem
-----BEGIN CERTIFICATE-----
not!base64
-----END CERTIFICATE-----
--- http_config
    # passkey: no defaults
    passkey_api_trusted_certificate $TEST_NGINX_SERVER_ROOT/html/broken.pem;
--- config
--- must_die
--- error_log eval
qr/"passkey_api_trusted_certificate": "[^"]+\/html\/broken\.pem" holds a certificate that cannot be read \(bad base64 decode\)/



=== TEST 41: a directory is not a certificate file
--- http_config
    # passkey: no defaults
    passkey_api_trusted_certificate $TEST_NGINX_TLS_DIR;
--- config
--- must_die
--- error_log eval
qr/"passkey_api_trusted_certificate": "\Q$ENV{TEST_NGINX_TLS_DIR}\E" must be a file of at most 4194304 bytes/



=== TEST 42: a libcurl without an asynchronous resolver
--- curl_shim: no-asynchdns
--- config
    location = /passkey/bind {
        passkey_bind;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*passkey: libcurl [\d.]+ has no asynchronous DNS resolver, API calls would block nginx workers/



=== TEST 43: a libcurl without HTTPS
--- curl_shim: no-https
--- config
    location = /passkey/bind {
        passkey_bind;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*passkey: libcurl [\d.]+ has no HTTPS support, the Beyond Identity API cannot be called/



=== TEST 44: a libcurl older than 7.85.0
--- curl_shim: old
--- config
    location = /passkey/bind {
        passkey_bind;
    }
--- must_die
--- error_log
passkey: libcurl 7.76.1 is too old, the module needs 7.85.0 or later



=== TEST 45: a libcurl that cannot take CA certificates from memory
--- curl_shim: no-blob
--- config
    location = /passkey/bind {
        passkey_api_trusted_certificate $TEST_NGINX_TLS_DIR/ca.crt;
        passkey_bind;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*passkey: libcurl [\d.]+ with \S+ cannot take "passkey_api_trusted_certificate" from memory \(CURLOPT_CAINFO_BLOB: /



=== TEST 46: without passkey locations libcurl is not checked
--- curl_shim: no-asynchdns
--- http_config
    # passkey: no defaults
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok
--- no_error_log
[emerg]



=== TEST 47: "master_process off" refuses a reload; the running configuration serves on
--- config
    location = /passkey/bind {
        passkey_bind;
    }
--- init
main::reload_and_wait();
--- request
POST /passkey/bind
{"username":"single47"}
--- more_headers
Content-Type: application/json
--- error_code: 200
--- response_body_like: "job_id"
--- error_log
passkey: nginx with "master_process off" cannot reload a configuration with passkey locations, the running one is kept; restart nginx to change it



=== TEST 48: passkey_api_keepalive out of range
--- http_config
    passkey_api_keepalive 0;
--- config
    location = /passkey/bind {
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_api_keepalive" must be between 1 and 4096, not "0"



=== TEST 49: passkey_api_keepalive is for the http block only
--- config
    location = /passkey/bind {
        passkey_api_keepalive 8;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_api_keepalive" directive is not allowed here



=== TEST 50: passkey_identity_cache takes a time or off
--- config
    location = /passkey/bind {
        passkey_bind_mode authenticated;
        passkey_username $http_x_user;
        passkey_identity_cache forever;
        passkey_bind;
    }
--- must_die
--- error_log
invalid value "forever" in "passkey_identity_cache": expected a time such as 10s, 5m, 24h, or "off"



=== TEST 51: passkey_bind_mode lists its values
--- http_config
    # passkey: no defaults
    passkey_bind_mode open;
--- config
--- must_die
--- error_log
invalid value "open" in "passkey_bind_mode": expected "signup" or "authenticated"



=== TEST 52: passkey_signup_existing lists its values
--- http_config
    # passkey: no defaults
    passkey_signup_existing ignore;
--- config
--- must_die
--- error_log
invalid value "ignore" in "passkey_signup_existing": expected "refuse" or "email"



=== TEST 53: passkey_bind_format lists its values
--- http_config
    # passkey: no defaults
    passkey_bind_format snake_case;
--- config
--- must_die
--- error_log
invalid value "snake_case" in "passkey_bind_format": expected "passkey", "beyond_identity" or "camel_case"



=== TEST 54: passkey_redis_down lists its values
--- http_config
    # passkey: no defaults
    passkey_redis_down retry;
--- config
--- must_die
--- error_log
invalid value "retry" in "passkey_redis_down": expected "refuse" or "allow"



=== TEST 55: passkey_invoke_unknown_jobs lists its values
--- http_config
    # passkey: no defaults
    passkey_invoke_unknown_jobs allow;
--- config
--- must_die
--- error_log
invalid value "allow" in "passkey_invoke_unknown_jobs": expected "verify" or "refuse"



=== TEST 56: a secret never shows in nginx -T
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok
