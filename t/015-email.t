# EMAIL delivery: Beyond Identity mails the link and the answer carries
# none; the delivery method may be picked by the request among those the
# location allows; the redirect after binding is checked against a list
# of origins and never taken raw from the client.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';

repeat_each(1);
no_shuffle();

# The caller is known (authenticated mode, the user in a header a trusted
# upstream sets), so answers carry the job; sign-up's answers are in
# t/115-caller.t.  Blocks repeat requests on purpose: no duplicate lock.
add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('http_config', ($block->http_config // '') . <<'CONF');
    passkey_bind_mode authenticated;
    passkey_username $http_x_user;
    passkey_duplicate_window off;
CONF

    my $req = $block->request // '';
    $req = join ' ', @$req if ref $req;
    my ($user) = $req =~ /"username":"(\w+)"/;

    $block->set_value('more_headers',
                      "Content-Type: application/json\nX-User: "
                      . ($user // 'nobody'))
        unless defined $block->more_headers;
});

run_tests();

__DATA__

=== TEST 1: an EMAIL job: the link goes to the user's mailbox, not to the caller
--- config
    location = /passkey/bind {
        passkey_delivery_method EMAIL;
        passkey_bind;
    }
--- request eval
["POST /passkey/bind\n{\"username\":\"mia\",\"email\":\"mia\@example.com\"}",
 "GET /fake/outbox"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/^\{"job_id":"[0-9a-f]{16}","identity_id":"[0-9a-f]{16}","state":"LINK_SENT","expire_time":"[^"]+","delivery_method":"EMAIL"\}$/,
 qr/"link":"http:[^"]+:invokeAuthenticator\?token=[^"]+".*"to":"mia\@example\.com"/]
--- redis_job
delivery_method: ^EMAIL$
username: ^mia$



=== TEST 2: an EMAIL job for someone without an email address
--- config
    location = /passkey/bind {
        passkey_delivery_method EMAIL;
        passkey_bind;
    }
--- request
POST /passkey/bind
{"username":"noemail"}
--- error_code: 422
--- response_body_like: "status":422,"detail":"Identity missing email address","code":"unprocessable"



=== TEST 3: the request picks among the allowed methods; the first is the default
--- config
    location = /passkey/bind {
        passkey_delivery_method RETURN EMAIL;
        passkey_bind;
    }
--- request eval
["POST /passkey/bind\n{\"username\":\"ned\",\"email\":\"ned\@example.com\",\"delivery_method\":\"EMAIL\"}",
 "POST /passkey/bind\n{\"username\":\"ned\"}"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/"delivery_method":"EMAIL"\}$/,
 qr/"delivery_method":"RETURN","credential_binding_link":"http/]



=== TEST 4: a method the location does not allow
--- config
    location = /passkey/bind {
        passkey_bind;
    }
--- request eval
["POST /passkey/bind\n{\"username\":\"olga\",\"email\":\"o\@example.com\",\"delivery_method\":\"EMAIL\"}",
 "POST /passkey/bind\n{\"username\":\"olga\",\"delivery_method\":\"SMS\"}",
 "POST /passkey/bind\n{\"username\":\"olga\",\"delivery_method\":1}",
 "GET /fake/stats"]
--- error_code eval
[400, 400, 400, 200]
--- response_body_like eval
[qr/"code":"invalid_delivery_method"/, qr/"code":"invalid_delivery_method"/,
 qr/"code":"invalid_delivery_method"/,
 qr/"create_identity":0,"create_job":0,/]



=== TEST 5: a configured redirect after binding is sent with the job
--- config
    location = /passkey/bind {
        passkey_post_binding_redirect_uri https://app.example.com/after-bind;
        passkey_bind;
    }
--- request eval
["POST /passkey/bind\n{\"username\":\"pat\"}", "GET /fake/requests"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/"job_id"/,
 qr/"body":"\{\\"job\\":\{\\"delivery_method\\":\\"RETURN\\",\\"post_binding_redirect_uri\\":\\"https:\/\/app\.example\.com\/after-bind\\",\\"authenticator_config_id\\":\\"67bb0acf12e5c899\\"\}\}"/]



=== TEST 6: a redirect built from the request must have an allowed origin
--- config
    location = /passkey/bind {
        passkey_post_binding_redirect_uri $http_x_return_to;
        passkey_redirect_origins https://app.example.com https://www.example.com:8443;
        passkey_bind;
    }
--- request eval
["POST /passkey/bind\n{\"username\":\"quinn\"}",
 "POST /passkey/bind\n{\"username\":\"quinn\"}",
 "POST /passkey/bind\n{\"username\":\"quinn\"}",
 "POST /passkey/bind\n{\"username\":\"quinn\"}",
 "POST /passkey/bind\n{\"username\":\"quinn\"}"]
--- more_headers eval
["Content-Type: application/json\r\nX-User: quinn\r\nX-Return-To: https://app.example.com/welcome?x=1",
 "Content-Type: application/json\r\nX-User: quinn\r\nX-Return-To: https://WWW.example.com:8443/",
 "Content-Type: application/json\r\nX-User: quinn\r\nX-Return-To: https://evil.example.net/",
 "Content-Type: application/json\r\nX-User: quinn\r\nX-Return-To: https://app.example.com\@evil.example.net/",
 "Content-Type: application/json\r\nX-User: quinn\r\nX-Return-To: javascript:alert(1)"]
--- error_code eval
[200, 200, 400, 400, 400]
--- response_body_like eval
[qr/"job_id"/, qr/"job_id"/, (qr/"code":"invalid_redirect"/) x 3]



=== TEST 7: a redirect built from request data needs the list of origins
--- config
    location = /passkey/bind {
        passkey_post_binding_redirect_uri $arg_next;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_post_binding_redirect_uri" with variables requires "passkey_redirect_origins"



=== TEST 8: an unknown delivery method in the configuration
--- config
    location = /passkey/bind {
        passkey_delivery_method SMS;
        passkey_bind;
    }
--- must_die
--- error_log
invalid value "SMS" in "passkey_delivery_method": expected RETURN or EMAIL



=== TEST 9: an origin with a path is not an origin
--- config
    location = /passkey/bind {
        passkey_redirect_origins https://app.example.com/after;
        passkey_bind;
    }
--- must_die
--- error_log
invalid origin "https://app.example.com/after" in "passkey_redirect_origins": expected scheme://host[:port]
