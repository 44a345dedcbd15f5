# Who a bind is for: authenticated mode takes the user from nginx and
# refuses bodies that name someone else; sign-up mode never hands out a
# link for a taken username, and answers every email sign-up alike.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';

repeat_each(1);
no_shuffle();

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('more_headers', 'Content-Type: application/json')
        unless defined $block->more_headers;
});

our $Existing = "POST /fake/identities\n"
    . '{"realm":"r1","username":"taken","email":"owner@example.com"}';

our $Signed = <<'CONF';
    # the application's session check: a trusted answer, not the client's
    location = /session {
        internal;
        proxy_pass              http://127.0.0.1:$TEST_NGINX_SERVER_PORT/app-session;
        proxy_pass_request_body off;
        proxy_set_header        Content-Length "";
    }

    location = /app-session {
        if ($http_x_session = "s-alice") {
            add_header X-User alice;
            return 204;
        }
        return 401;
    }

    location = /passkey/bind {
        auth_request      /session;
        auth_request_set  $user $upstream_http_x_user;
        passkey_bind_mode authenticated;
        passkey_username  $user;
        passkey_duplicate_window off;
        passkey_bind;
    }
CONF

run_tests();

__DATA__

=== TEST 1: authenticated: a session answers with the link of its own user
The first bind looks alice up, creates her and asks for a job; the second
remembers her identity and only asks for a job.
--- config eval: $::Signed
--- more_headers
Content-Type: application/json
X-Session: s-alice
--- request eval
["POST /passkey/bind\n{}", "POST /passkey/bind\n{\"username\":\"ALICE\"}",
 "GET /fake/stats"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[qr/"credential_binding_link":"http/, qr/"credential_binding_link":"http/,
 qr/"create_identity":1,"create_job":2,.*"list_identities":1,/]
--- redis_job
username: ^alice$



=== TEST 2: authenticated: no session, nothing happens
--- config eval: $::Signed
--- request eval
["POST /passkey/bind\n{\"username\":\"alice\"}", "GET /fake/stats"]
--- error_code eval
[401, 200]
--- response_body_like eval
[qr/401 Authorization Required/, qr/"create_identity":0,"create_job":0,/]



=== TEST 3: authenticated: an empty verified user is 401 from the module
--- config
    location = /passkey/bind {
        passkey_bind_mode authenticated;
        passkey_username  $http_x_verified_user;
        passkey_bind;
    }
--- request eval
["POST /passkey/bind\n{\"username\":\"alice\"}", "GET /fake/stats"]
--- error_code eval
[401, 200]
--- response_body_like eval
[qr/"code":"unauthenticated"/, qr/"create_identity":0,"create_job":0,/]
--- block_error_log
passkey: unauthenticated: sign in first: no verified user



=== TEST 4: authenticated: a body naming someone else is refused before any call
--- config eval: $::Signed
--- more_headers
Content-Type: application/json
X-Session: s-alice
--- request eval
["POST /passkey/bind\n{\"username\":\"bob\"}",
 "POST /passkey/bind\n{\"username\":[\"alice\"]}",
 "GET /fake/stats"]
--- error_code eval
[403, 403, 200]
--- response_body_like eval
[qr/"code":"identity_mismatch"/, qr/"code":"identity_mismatch"/,
 qr/"create_identity":0,"create_job":0,/]
--- block_error_log
passkey: identity_mismatch: the request names another user



=== TEST 5: authenticated: the verified address wins over the body's
--- config
    location = /passkey/bind {
        passkey_bind_mode authenticated;
        passkey_username  $http_x_user;
        passkey_email     $http_x_user_email;
        passkey_bind;
    }
--- more_headers
Content-Type: application/json
X-User: carol
X-User-Email: carol@example.com
--- request eval
["POST /passkey/bind\n{\"email\":\"attacker\@example.net\"}",
 "POST /passkey/bind\n{\"email\":\"CAROL\@example.com\"}",
 "GET /fake/identities?realm=r1"]
--- error_code eval
[403, 200, 200]
--- response_body_like eval
[qr/"code":"identity_mismatch"/, qr/"job_id"/,
 qr/^(?!.*attacker).*"primary_email_address":"carol\@example\.com"/s]



=== TEST 6: authenticated: the user may not come from what the client writes
--- config
    location = /passkey/bind {
        passkey_bind_mode authenticated;
        passkey_username  $passkey_json_username;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_bind_mode authenticated" cannot take the user from the request body, arguments or cookies



=== TEST 7: authenticated: nor from an argument
--- config
    location = /passkey/bind {
        passkey_bind_mode authenticated;
        passkey_username  "user-${arg_user}";
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_bind_mode authenticated" cannot take the user from the request body, arguments or cookies



=== TEST 8: authenticated: nor from a cookie, nor an email from the body
--- config
    location = /passkey/bind {
        passkey_bind_mode authenticated;
        passkey_username  $remote_user;
        passkey_email     $cookie_email;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_bind_mode authenticated" cannot take the user from the request body, arguments or cookies



=== TEST 9: authenticated: without a verified user there is no mode
--- config
    location = /passkey/bind {
        passkey_bind_mode authenticated;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_bind_mode authenticated" requires "passkey_username" with the variable that holds the verified user name



=== TEST 10: sign-up by RETURN: a free name gets its link, a taken one never
--- config
    location = /passkey/bind {
        passkey_bind_mode signup;
        passkey_bind;
    }
--- request eval
[$::Existing,
 "POST /passkey/bind\n{\"username\":\"newbie\"}",
 "POST /passkey/bind\n{\"username\":\"taken\"}",
 "GET /fake/stats"]
--- error_code eval
[200, 200, 202, 200]
--- response_body_like eval
[qr/"id"/, qr/"credential_binding_link":"http/,
 qr/^\{"state":"accepted","delivery_method":"EMAIL"\}$/,
 qr/"create_identity":2,"create_job":1,/]
--- block_error_log
passkey: sign-up refused: the username is taken by identity



=== TEST 11: sign-up by EMAIL: free and taken names get the same answer
--- config
    location = /passkey/bind {
        passkey_bind_mode signup;
        passkey_delivery_method EMAIL;
        passkey_bind;
    }
--- request eval
[$::Existing,
 "POST /passkey/bind\n{\"username\":\"fresh\",\"email\":\"fresh\@example.com\"}",
 "POST /passkey/bind\n{\"username\":\"TAKEN\",\"email\":\"x\@example.net\"}",
 "GET /fake/outbox"]
--- error_code eval
[200, 202, 202, 200]
--- response_body_like eval
[qr/"id"/,
 qr/^\{"state":"accepted","delivery_method":"EMAIL"\}\n\z/,
 qr/^\{"state":"accepted","delivery_method":"EMAIL"\}\n\z/,
 qr/^(?!.*(?:owner|x\@example)).*"to":"fresh\@example\.com"/s]



=== TEST 12: sign-up with "email": the owner gets the mail, not the asker
--- config
    location = /passkey/bind {
        passkey_bind_mode signup;
        passkey_signup_existing email;
        passkey_bind;
    }
--- request eval
[$::Existing,
 "POST /passkey/bind\n{\"username\":\"taken\",\"email\":\"attacker\@example.net\",\"delivery_method\":\"RETURN\"}",
 "GET /fake/outbox"]
--- error_code eval
[200, 202, 200]
--- response_body_like eval
[qr/"id"/, qr/^\{"state":"accepted","delivery_method":"EMAIL"\}$/,
 qr/^(?!.*attacker)\{"messages":\[\{[^{}]*"to":"owner\@example\.com"[^{}]*\}\]\}$/s]
--- block_error_log
passkey: sign-up with a taken username: emailing identity



=== TEST 13: sign-up: an owner without an address still gets the same answer
--- config
    location = /passkey/bind {
        passkey_bind_mode signup;
        passkey_signup_existing email;
        passkey_delivery_method EMAIL;
        passkey_bind;
    }
--- request eval
["POST /fake/identities\n{\"realm\":\"r1\",\"username\":\"mute\"}",
 "POST /passkey/bind\n{\"username\":\"mute\",\"email\":\"m\@example.com\"}",
 "GET /fake/outbox"]
--- error_code eval
[200, 202, 200]
--- response_body_like eval
[qr/"id"/, qr/^\{"state":"accepted","delivery_method":"EMAIL"\}$/,
 qr/^\{"messages":\[\]\}$/]
--- block_error_log
Beyond Identity answered 422



=== TEST 14: sign-up by EMAIL needs an address, asked of everyone
--- config
    location = /passkey/bind {
        passkey_bind_mode signup;
        passkey_delivery_method EMAIL;
        passkey_bind;
    }
--- request eval
[$::Existing,
 "POST /passkey/bind\n{\"username\":\"nobody\"}",
 "POST /passkey/bind\n{\"username\":\"taken\"}"]
--- error_code eval
[200, 400, 400]
--- response_body_like eval
[qr/"id"/, qr/"code":"missing_email"/, qr/"code":"missing_email"/]



=== TEST 15: the cooldown: one email per identity, whoever asks
--- config
    location = /signup {
        passkey_bind_mode signup;
        passkey_signup_existing email;
        passkey_delivery_method EMAIL;
        passkey_duplicate_window off;
        passkey_bind;
    }

    location = /passkey/bind {
        passkey_bind_mode authenticated;
        passkey_username  $http_x_user;
        passkey_delivery_method EMAIL;
        passkey_duplicate_window off;
        passkey_bind;
    }
--- more_headers
Content-Type: application/json
X-User: taken
--- request eval
[$::Existing,
 "POST /signup\n{\"username\":\"taken\",\"email\":\"a\@example.net\"}",
 "POST /signup\n{\"username\":\"taken\",\"email\":\"b\@example.net\"}",
 "POST /passkey/bind\n{}",
 "GET /fake/outbox"]
--- error_code eval
[200, 202, 202, 429, 200]
--- response_body_like eval
[qr/"id"/, qr/^\{"state":"accepted"/, qr/^\{"state":"accepted"/,
 qr/"code":"email_cooldown"/,
 qr/^\{"messages":\[\{[^{}]*\}\]\}$/]
--- response_headers_like eval
["", "", "", "Retry-After: ^(?:[1-5]?\\d|60)\$", ""]
--- block_error_log
less than passkey_email_cooldown ago



=== TEST 16: each location judges the same history by its own cooldown
--- config
    location = /quick {
        passkey_bind_mode authenticated;
        passkey_username  $http_x_user;
        passkey_delivery_method EMAIL;
        passkey_email_cooldown 1s;
        passkey_duplicate_window off;
        passkey_bind;
    }

    location = /slow {
        passkey_bind_mode signup;
        passkey_signup_existing email;
        passkey_delivery_method EMAIL;
        passkey_email_cooldown 1h;
        passkey_duplicate_window off;
        passkey_bind;
    }
--- more_headers
Content-Type: application/json
X-User: taken
--- request eval
[$::Existing,
 "POST /quick\n{}",
 "GET /fake/sleep?ms=1200",
 "POST /quick\n{}",
 "POST /slow\n{\"username\":\"taken\",\"email\":\"t\@example.net\"}",
 "GET /fake/outbox"]
--- error_code eval
[200, 200, 200, 200, 202, 200]
--- response_body_like eval
[qr/"id"/, qr/"job_id"/, qr/slept/, qr/"job_id"/,
 qr/^\{"state":"accepted"/,
 qr/^\{"messages":\[\{[^{}]*\},\{[^{}]*\}\]\}$/]
--- block_error_log
less than passkey_email_cooldown ago



=== TEST 17: a new identity's first email starts its cooldown
--- config
    location = /passkey/bind {
        passkey_bind_mode signup;
        passkey_signup_existing email;
        passkey_delivery_method EMAIL;
        passkey_duplicate_window off;
        passkey_bind;
    }
--- request eval
["POST /passkey/bind\n{\"username\":\"fresh\",\"email\":\"fresh\@example.com\"}",
 "POST /passkey/bind\n{\"username\":\"fresh\",\"email\":\"other\@example.com\"}",
 "GET /fake/outbox"]
--- error_code eval
[202, 202, 200]
--- response_body_like eval
[qr/^\{"state":"accepted"/, qr/^\{"state":"accepted"/,
 qr/^\{"messages":\[\{[^{}]*"to":"fresh\@example\.com"[^{}]*\}\]\}$/]
--- block_error_log
less than passkey_email_cooldown ago



=== TEST 18: authenticated: nor from the URI, by a regex capture
--- config
    location ~ ^/bind/([a-z]+)$ {
        passkey_bind_mode authenticated;
        passkey_username  $1;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_bind_mode authenticated" cannot take the user from the request body, arguments or cookies
