# TLS to the API is verified by default and fails closed: a certificate
# from an unknown CA is refused unless passkey_api_trusted_certificate
# names that CA.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';

repeat_each(1);
no_shuffle();

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('more_headers', 'Content-Type: application/json')
        unless defined $block->more_headers;

    # loading the system's CA store is slow under valgrind
    $block->set_value('timeout', 20) unless defined $block->timeout;

    # "--- static_token": no token endpoint, so that no call is made
    # before the block's request (workers fetch a token at start)
    my $credentials = defined $block->static_token ? <<'STATIC' : <<'CLIENT';
    passkey_api_token_file $TEST_NGINX_SECRETS/api_token;
STATIC
    passkey_application_id app1;
    passkey_client_id passkey-client;
    passkey_client_secret_file $TEST_NGINX_SECRETS/client_secret;
CLIENT

    my $base = <<'CONF';
    # passkey: no defaults
    passkey_api_url https://127.0.0.1:$TEST_NGINX_BI_TLS_PORT;
    passkey_auth_url https://127.0.0.1:$TEST_NGINX_BI_TLS_AUTH_PORT;
    passkey_tenant_id @TENANT@;
    passkey_realm_id r1;
    passkey_authenticator_config_id 67bb0acf12e5c899;
    passkey_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    passkey_redis_prefix test:@TENANT@:;
    passkey_delivery_method RETURN;
    # under valgrind, parsing the CA store holds the worker for seconds
    passkey_redis_timeout 10s;
CONF

    $block->set_value('http_config',
                      $base . $credentials . ($block->http_config // ''));
});

sub bind_req {
    my ($user) = @_;
    return "POST /passkey/bind\n{\"username\":\"$user\"}";
}

run_tests();

__DATA__

=== TEST 1: a certificate from a private CA is refused by default
--- config
    location = /passkey/bind {
        passkey_bind;
    }
--- request eval
main::bind_req("tls1")
--- error_code: 502
--- response_body_like: "code":"api_unreachable"
--- error_log eval
qr/passkey: access token request to "https:\/\/127\.0\.0\.1:$ENV{TEST_NGINX_BI_TLS_AUTH_PORT}\/v1\/.*" failed: .*[Cc]ertificate/



=== TEST 2: the private CA as passkey_api_trusted_certificate
--- config
    location = /passkey/bind {
        passkey_api_trusted_certificate $TEST_NGINX_TLS_DIR/ca.crt;
        passkey_bind;
    }
--- request eval
main::bind_req("tls2")
--- error_code: 200
--- response_body_like eval
qr{"credential_binding_link":"https://127\.0\.0\.1:$ENV{TEST_NGINX_BI_TLS_AUTH_PORT}/v1/}



=== TEST 3: another CA is not enough
--- config
    location = /passkey/bind {
        passkey_api_trusted_certificate $TEST_NGINX_TLS_DIR/other-ca.crt;
        passkey_bind;
    }
--- request eval
main::bind_req("tls3")
--- error_code: 502
--- response_body_like: "code":"api_unreachable"



=== TEST 4: passkey_api_verify off (for tests only) skips verification
--- config
    location = /passkey/bind {
        passkey_api_verify off;
        passkey_bind;
    }
--- request eval
main::bind_req("tls4")
--- error_code: 200
--- response_body_like: "job_id"



=== TEST 5: the CA file is read when the configuration loads: deleting it later does not matter
--- static_token
--- user_files eval
">>> ca-copy.crt\n" . do {
    open my $fh, '<', "$ENV{TEST_NGINX_TLS_DIR}/ca.crt" or die "ca.crt: $!";
    local $/;
    <$fh>;
}
--- config
    location = /passkey/bind {
        passkey_api_trusted_certificate $TEST_NGINX_SERVER_ROOT/html/ca-copy.crt;
        passkey_bind;
    }
--- init
t::Passkey::nginx_pid();
unlink "$ENV{TEST_NGINX_SERVER_ROOT}/html/ca-copy.crt"
    or die "cannot delete the CA file: $!";
--- request eval
main::bind_req("tls5")
--- error_code: 200
--- response_body_like eval
qr{"credential_binding_link":"https://127\.0\.0\.1:$ENV{TEST_NGINX_BI_TLS_AUTH_PORT}/v1/}
