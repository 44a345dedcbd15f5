# The quick start's two passkey locations (examples/nginx.conf) as plain
# Test::Nginx blocks: "add a passkey to my account" behind a session
# check standing in for the app's (signed in: 200 with the link; no
# session: 401; a body naming someone else: 403), and the sign-up by
# email (202 and nothing else; not from another site's page).
# t/071-examples-quickstart.t runs the whole file, with the app.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: the quick start's "add a passkey to my account": signed in
--- http_config
    map $cookie_demo_session $test_user {
        alice-session  quickstart-alice;
        default        "";
    }
--- config
    location = /passkey/bind {
        auth_request      /_auth;
        auth_request_set  $passkey_user  $upstream_http_x_user;

        passkey_bind_mode        authenticated;
        passkey_username         $passkey_user;
        passkey_delivery_method  RETURN EMAIL;
        passkey_limit            $passkey_username  rate=10/m;

        passkey_bind;

        add_header  X-Passkey-Job  $passkey_job_id always;
    }

    location = /_auth {
        internal;
        proxy_pass  http://127.0.0.1:$TEST_NGINX_SERVER_PORT/session;
        proxy_pass_request_body  off;
        proxy_set_header  Content-Length  "";
    }

    location = /session {
        if ($test_user = "") {
            return 401;
        }
        add_header  X-User  $test_user;
        return 204;
    }
--- more_headers
Content-Type: application/json
Cookie: demo_session=alice-session
--- request
POST /passkey/bind
{}
--- error_code: 200
--- response_headers_like
X-Passkey-Job: ^[0-9a-f]{16}$
RateLimit-Limit: ^10$
--- response_body_like: "RETURN","credential_binding_link":"http



=== TEST 2: the quick start's "add a passkey to my account": no session
--- http_config
    map $cookie_demo_session $test_user {
        alice-session  quickstart-alice;
        default        "";
    }
--- config
    location = /passkey/bind {
        auth_request      /_auth;
        auth_request_set  $passkey_user  $upstream_http_x_user;

        passkey_bind_mode  authenticated;
        passkey_username   $passkey_user;

        passkey_bind;
    }

    location = /_auth {
        internal;
        proxy_pass  http://127.0.0.1:$TEST_NGINX_SERVER_PORT/session;
        proxy_pass_request_body  off;
        proxy_set_header  Content-Length  "";
    }

    location = /session {
        if ($test_user = "") {
            return 401;
        }
        add_header  X-User  $test_user;
        return 204;
    }
--- more_headers
Content-Type: application/json
Cookie: demo_session=forged
--- request
POST /passkey/bind
{"username":"quickstart-alice"}
--- error_code: 401
--- response_body_unlike: job_id



=== TEST 3: the quick start's "add a passkey to my account": someone else
--- http_config
    map $cookie_demo_session $test_user {
        alice-session  quickstart-alice;
        default        "";
    }
--- config
    location = /passkey/bind {
        auth_request      /_auth;
        auth_request_set  $passkey_user  $upstream_http_x_user;

        passkey_bind_mode  authenticated;
        passkey_username   $passkey_user;

        passkey_bind;
    }

    location = /_auth {
        internal;
        proxy_pass  http://127.0.0.1:$TEST_NGINX_SERVER_PORT/session;
        proxy_pass_request_body  off;
        proxy_set_header  Content-Length  "";
    }

    location = /session {
        if ($test_user = "") {
            return 401;
        }
        add_header  X-User  $test_user;
        return 204;
    }
--- more_headers
Content-Type: application/json
Cookie: demo_session=alice-session
--- request
POST /passkey/bind
{"username":"quickstart-bob"}
--- error_code: 403
--- response_body_like: "code":"identity_mismatch"
--- error_log
identity_mismatch



=== TEST 4: the quick start's sign-up: 202 and nothing else
--- config
    location = /passkey/signup {
        passkey_bind_mode        signup;
        passkey_delivery_method  EMAIL;
        passkey_signup_existing  email;
        passkey_limit            $binary_remote_addr  rate=10/m burst=20;
        passkey_limit            $passkey_username    rate=5/h;
        passkey_limit            $passkey_email       rate=3/h;
        passkey_email_cooldown   5m;

        passkey_bind;
    }
--- more_headers
Content-Type: application/json
--- request
POST /passkey/signup
{"username":"quickstart-carol","email":"carol@example.com"}
--- error_code: 202
--- response_body
{"state":"accepted","delivery_method":"EMAIL"}



=== TEST 5: the quick start's sign-up: not from another site's page
--- config
    location = /passkey/signup {
        passkey_bind_mode        signup;
        passkey_delivery_method  EMAIL;
        passkey_allowed_origins  http://127.0.0.1:8080 http://localhost:8080;

        passkey_bind;
    }
--- more_headers
Content-Type: application/json
Origin: https://evil.example
--- request
POST /passkey/signup
{"username":"quickstart-carol","email":"carol@example.com"}
--- error_code: 403
--- response_body_like: "code":"forbidden_origin"
--- error_log
cross-site request refused
