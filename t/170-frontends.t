# What Beyond Identity's own example frontends send and read: the
# delivery method in any case ("return"), members the module does not
# know (authenticator_type) ignored, and passkey_bind_format: the answer
# as this module names it, as Beyond Identity's envelope, or in camelCase.
# Sign-up's 202 and problem details keep their shapes, and a replay gives
# the first answer's bytes, whatever the format and however the retry
# spells the delivery method.  examples/frontends.conf, which puts it all
# together behind CORS, is run in t/075-examples-frontends.t.
#
# Flows that compare answers with each other are Perl code run after the
# block's request ("GET /ready").

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use HTTP::Tiny;

repeat_each(1);
no_shuffle();

our %Flows;

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('more_headers', 'Content-Type: application/json')
        unless defined $block->more_headers;

    my $config = $block->config // '';

    $config .= <<'CONF' unless $config =~ m{location = /passkey/bind };
    location = /passkey/bind {
        passkey_bind;
    }
CONF

    $block->set_value('config', $config . <<'CONF');
    location = /ready {
        return 200 "ready\n";
    }
CONF
});

run_flows(\%Flows);

# one bind, as the frontends send it
sub post {
    my ($path, $body, %headers) = @_;
    return HTTP::Tiny->new(timeout => 10)->post(
        "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}$path",
        { headers => { 'Content-Type' => 'application/json', %headers },
          content => $body });
}


# In each format: the first answer, then retries with the same key that
# spell the delivery method otherwise, order the members otherwise or add
# members the module ignores: the same bytes, and one job.  Another
# username with the key is another request.
$Flows{'a replay is the first answer, byte for byte, in every format'} = sub {
    my ($block, $name) = @_;

    my %paths = (passkey => '/passkey/bind', beyond_identity => '/bi',
                 camel_case => '/camel');
    my $n = 0;

    for my $format (sort keys %paths) {
        my $path = $paths{$format};
        my $key = "frontends-key-$format-0123456789";
        my $user = "replay-" . ++$n;
        my $what = "$name - $format";

        my $first = post($path, qq({"username":"$user",)
                                . qq("authenticator_type":"web",)
                                . qq("delivery_method":"return"}),
                         'Idempotency-Key' => $key);
        Test::More::is($first->{status}, 200, "$what: first: 200");
        Test::More::like($first->{content},
                         qr/"(?:credential_binding_link|credentialBindingLink)"
                            :"http[^"]+token=/x,
                         "$what: first: the link");

        my @retries = (
            qq({"username":"$user","delivery_method":"RETURN"}),
            qq({"delivery_method":"Return","authenticator_type":"native",)
            . qq("username":"$user"}),
            qq({ "username" : "$user", "delivery_method" : "return" }),
        );

        for my $i (0 .. $#retries) {
            my $res = post($path, $retries[$i], 'Idempotency-Key' => $key);
            Test::More::is($res->{status}, 200, "$what: retry $i: 200");
            Test::More::is($res->{content}, $first->{content},
                           "$what: retry $i: the same bytes");
            Test::More::is($res->{headers}{'idempotent-replayed'}, 'true',
                           "$what: retry $i: Idempotent-Replayed: true");
        }

        my $res = post($path, qq({"username":"$user-2",)
                              . qq("delivery_method":"return"}),
                       'Idempotency-Key' => $key);
        Test::More::is($res->{status}, 422, "$what: another user: 422");
        Test::More::like($res->{content},
                         qr/"code":"idempotency_key_reused"/,
                         "$what: ... idempotency_key_reused");
    }

    my $stats = HTTP::Tiny->new(timeout => 10)->get(
        "http://127.0.0.1:$ENV{TEST_NGINX_BI_PORT}/__fake/stats?tenant="
        . block_tenant($block->seq_num))->{content};
    Test::More::like($stats, qr/"create_identity":3,"create_job":3,/,
                     "$name - one job per format, none for the other user");
};

run_tests();

__DATA__

=== TEST 1: delivery_method in any case; only RETURN and EMAIL go on
--- config
    location = /passkey/bind {
        passkey_delivery_method RETURN EMAIL;
        passkey_bind;

        add_header X-Method $passkey_delivery_method always;
    }
--- request eval
["POST /passkey/bind\n{\"username\":\"case-1\",\"delivery_method\":\"return\"}",
 "POST /passkey/bind\n{\"username\":\"case-2\",\"delivery_method\":\"Return\"}",
 "POST /passkey/bind\n{\"username\":\"case-3\",\"delivery_method\":\"\\u0072eTURN\"}",
 "POST /passkey/bind\n{\"username\":\"case-4\",\"email\":\"case-4\@example.com\",\"delivery_method\":\"eMaIl\"}",
 "GET /fake/stats"]
--- error_code eval
[200, 200, 200, 202, 200]
--- response_headers eval
["X-Method: RETURN", "X-Method: RETURN", "X-Method: RETURN",
 "X-Method: EMAIL", ""]
--- response_body_like eval
[qr/"state":"LINK_SENT","expire_time":"[^"]+","delivery_method":"RETURN","credential_binding_link":"http/,
 qr/"delivery_method":"RETURN","credential_binding_link":"http/,
 qr/"delivery_method":"RETURN","credential_binding_link":"http/,
 qr/^\{"state":"accepted","delivery_method":"EMAIL"\}$/,
 qr/"create_identity":4,"create_job":4,/]
--- redis_job
delivery_method: ^RETURN$



=== TEST 2: the API is sent the canonical method, whatever the request spelled
--- config
    location = /passkey/bind {
        passkey_delivery_method RETURN EMAIL;
        passkey_bind;
    }
--- request eval
["POST /passkey/bind\n{\"username\":\"canon-1\",\"delivery_method\":\"return\"}",
 "POST /passkey/bind\n{\"username\":\"canon-2\",\"email\":\"canon-2\@example.com\",\"delivery_method\":\"email\"}",
 "GET /fake/requests"]
--- error_code eval
[200, 202, 200]
--- response_body_like eval
[qr/"job_id"/, qr/"accepted"/,
 qr/^(?!.*\\"delivery_method\\":\\"(?:return|email)\\").*\{\\"job\\":\{\\"delivery_method\\":\\"RETURN\\".*\{\\"job\\":\{\\"delivery_method\\":\\"EMAIL\\"/s]



=== TEST 3: other spellings are not a delivery method, and cost no API call
--- config
    location = /passkey/bind {
        passkey_delivery_method RETURN EMAIL;
        passkey_bind;
    }
--- request eval
["POST /passkey/bind\n{\"username\":\"odd-1\",\"delivery_method\":\"return \"}",
 "POST /passkey/bind\n{\"username\":\"odd-2\",\"delivery_method\":\" RETURN\"}",
 "POST /passkey/bind\n{\"username\":\"odd-3\",\"delivery_method\":\"retur\"}",
 "POST /passkey/bind\n{\"username\":\"odd-4\",\"delivery_method\":\"\"}",
 "POST /passkey/bind\n{\"username\":\"odd-5\",\"delivery_method\":\"\xef\xbc\xb2ETURN\"}",
 "POST /passkey/bind\n{\"username\":\"odd-6\",\"delivery_method\":\"returns\"}",
 "GET /fake/stats"]
--- error_code eval
[400, 400, 400, 400, 400, 400, 200]
--- response_body_like eval
[(qr/"code":"invalid_delivery_method"/) x 6,
 qr/"create_identity":0,"create_job":0,/]



=== TEST 4: a method the location does not allow is refused in any case
--- config
    location = /passkey/bind {
        passkey_delivery_method RETURN;
        passkey_bind;
    }
--- request eval
["POST /passkey/bind\n{\"username\":\"only-1\",\"email\":\"o\@example.com\",\"delivery_method\":\"email\"}",
 "POST /passkey/bind\n{\"username\":\"only-2\",\"email\":\"o\@example.com\",\"delivery_method\":\"Email\"}",
 "GET /fake/stats"]
--- error_code eval
[400, 400, 200]
--- response_body_like eval
[qr/"code":"invalid_delivery_method"/, qr/"code":"invalid_delivery_method"/,
 qr/"create_identity":0,"create_job":0,/]



=== TEST 5: members the module does not know are ignored, and never sent on
--- request eval
["POST /passkey/bind\n{\"username\":\"sdk-web\",\"authenticator_type\":\"web\",\"delivery_method\":\"return\"}",
 "POST /passkey/bind\n{\"username\":\"sdk-mobile\",\"authenticator_type\":\"native\",\"delivery_method\":\"return\"}",
 "POST /passkey/bind\n{\"username\":\"sdk-odd\",\"nested\":{\"a\":[1,{\"b\":null}]},\"n\":1.5,\"t\":true,\"z\":null,\"list\":[]}",
 "GET /fake/requests"]
--- more_headers eval
["Content-Type: application/json",
 "Content-Type: application/json; charset=UTF-8",
 "Content-Type: application/json",
 ""]
--- error_code eval
[200, 200, 200, 200]
--- response_body_like eval
[qr/"delivery_method":"RETURN","credential_binding_link":"http/,
 qr/"delivery_method":"RETURN","credential_binding_link":"http/,
 qr/"delivery_method":"RETURN","credential_binding_link":"http/,
 qr/^(?!.*(?:authenticator_type|native|nested|\\"list\\")).*\\"username\\":\\"sdk-web\\".*\\"username\\":\\"sdk-mobile\\".*\\"username\\":\\"sdk-odd\\"/s]



=== TEST 6: Beyond Identity's envelope: the job as the API gave it, and the link
--- config
    location = /passkey/bind {
        passkey_bind_format beyond_identity;
        passkey_post_binding_redirect_uri https://app.example.com/welcome;
        passkey_bind;
    }
--- request
POST /passkey/bind
{"username":"envelope-1","authenticator_type":"native","delivery_method":"return"}
--- error_code: 200
--- response_headers
Content-Type: application/json
Cache-Control: no-store
--- response_body_like eval
qr/^\{"credential_binding_job":\{"id":"[0-9a-f]{16}","realm_id":"r1","tenant_id":"\w+","identity_id":"[0-9a-f]{16}","delivery_method":"RETURN","state":"LINK_SENT","post_binding_redirect_uri":"https:\/\/app.example.com\/welcome","authenticator_config_id":"67bb0acf12e5c899","expire_time":"[0-9T:.Z-]+","create_time":"[0-9T:.Z-]+","update_time":"[0-9T:.Z-]+"\},"credential_binding_link":"http:\/\/[^"]+\/credential-binding-jobs\/[0-9a-f]{16}:invokeAuthenticator\?token=[\w-]+"\}\n$/



=== TEST 7: Beyond Identity's envelope of an EMAIL job has no link
--- config
    location = /passkey/bind {
        passkey_bind_mode authenticated;
        passkey_username $http_x_user;
        passkey_email $http_x_email;
        passkey_delivery_method EMAIL;
        passkey_bind_format beyond_identity;
        passkey_bind;
    }
--- more_headers
Content-Type: application/json
X-User: envelope-mail
X-Email: envelope-mail@example.com
--- request
POST /passkey/bind
{}
--- error_code: 200
--- response_body_like eval
qr/^\{"credential_binding_job":\{"id":"[0-9a-f]{16}","realm_id":"r1","tenant_id":"\w+","identity_id":"[0-9a-f]{16}","delivery_method":"EMAIL","state":"LINK_SENT","authenticator_config_id":"67bb0acf12e5c899","expire_time":"[^"]+","create_time":"[^"]+","update_time":"[^"]+"\}\}\n$/



=== TEST 8: the envelope passes on only the members the API documents
--- config
    location = /passkey/bind {
        passkey_bind_format beyond_identity;
        passkey_bind;
    }
--- fault
{"route":"create_job","type":"status","status":200,"body":"{\"credential_binding_job\":{\"id\":\"0123456789abcdef\",\"state\":\"LINK_SENT\",\"delivery_method\":\"RETURN\",\"internal_note\":\"not for browsers\",\"create_time\":5,\"expire_time\":\"2030-01-01T00:00:00Z\"},\"credential_binding_link\":\"https://auth.example.com/v1/tenants/t/realms/r/identities/i/credential-binding-jobs/0123456789abcdef:invokeAuthenticator?token=odd\",\"extra\":\"nor this\"}"}
--- request
POST /passkey/bind
{"username":"envelope-odd"}
--- error_code: 200
--- response_body eval
qq({"credential_binding_job":{"id":"0123456789abcdef","delivery_method":"RETURN","state":"LINK_SENT","expire_time":"2030-01-01T00:00:00Z"},"credential_binding_link":"https://auth.example.com/v1/tenants/t/realms/r/identities/i/credential-binding-jobs/0123456789abcdef:invokeAuthenticator?token=odd"}\n)



=== TEST 9: camelCase, with the username, as getting-started-angular reads it
--- config
    location = /passkey/bind {
        passkey_bind_format camel_case;
        passkey_bind;
    }
--- request
POST /passkey/bind
{"username":"camel-1"}
--- error_code: 200
--- response_body_like eval
qr/^\{"username":"camel-1","jobId":"[0-9a-f]{16}","identityId":"[0-9a-f]{16}","state":"LINK_SENT","expireTime":"[^"]+","deliveryMethod":"RETURN","credentialBindingLink":"http[^"]+:invokeAuthenticator\?token=[\w-]+"\}\n$/
--- redis_job
delivery_method: ^RETURN$



=== TEST 10: camelCase of an EMAIL job has no link
--- config
    location = /passkey/bind {
        passkey_bind_mode authenticated;
        passkey_username $http_x_user;
        passkey_email $http_x_email;
        passkey_delivery_method RETURN EMAIL;
        passkey_bind_format camel_case;
        passkey_bind;
    }
--- more_headers
Content-Type: application/json
X-User: camel-mail
X-Email: camel-mail@example.com
--- request
POST /passkey/bind
{"delivery_method":"email"}
--- error_code: 200
--- response_body_like eval
qr/^\{"username":"camel-mail","jobId":"[0-9a-f]{16}","identityId":"[0-9a-f]{16}","state":"LINK_SENT","expireTime":"[^"]+","deliveryMethod":"EMAIL"\}\n$/



=== TEST 11: sign-up's 202 and problem details keep their shapes in every format
--- config
    location = /bi {
        passkey_delivery_method RETURN EMAIL;
        passkey_bind_format beyond_identity;
        passkey_bind;
    }
    location = /camel {
        passkey_bind_format camel_case;
        passkey_bind;
    }
--- request eval
["POST /bi\n{\"username\":\"shape-1\",\"email\":\"shape-1\@example.com\",\"delivery_method\":\"email\"}",
 "POST /camel\n{\"username\":\"shape-2\"}",
 "POST /camel\n{\"username\":\"shape-2\",\"display_name\":\"Shape\"}",
 "POST /bi\n{\"username\":\"\"}",
 "POST /camel\n{\"username\":\"shape-3\",\"delivery_method\":\"sms\"}"]
--- error_code eval
[202, 200, 202, 400, 400]
--- response_body_like eval
[qr/^\{"state":"accepted","delivery_method":"EMAIL"\}\n$/,
 qr/"credentialBindingLink":"http/,
 qr/^\{"state":"accepted","delivery_method":"EMAIL"\}\n$/,
 qr/^\{"type":"urn:ngx-passkey:problem:missing_username","title":"Bad Request","status":400,"detail":"[^"]+","code":"missing_username","request_id":"\w+"\}\n$/,
 qr/^\{"type":"urn:ngx-passkey:problem:invalid_delivery_method","title":"Bad Request","status":400,"detail":"[^"]+","code":"invalid_delivery_method","request_id":"\w+"\}\n$/]



=== TEST 12: a replay is the first answer, byte for byte, in every format
--- config
    location = /bi {
        passkey_bind_format beyond_identity;
        passkey_bind;
    }
    location = /camel {
        passkey_bind_format camel_case;
        passkey_bind;
    }
--- request
GET /ready
--- response_body
ready



=== TEST 13: the format is inherited, and a location may set its own
--- http_config
    passkey_bind_format camel_case;
--- config
    location = /inherited {
        passkey_bind;
    }
    location = /own {
        passkey_bind_format passkey;
        passkey_bind;
    }
--- request eval
["POST /inherited\n{\"username\":\"inherit-1\"}",
 "POST /own\n{\"username\":\"inherit-2\"}"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/^\{"username":"inherit-1","jobId":/,
 qr/^\{"job_id":"[0-9a-f]{16}","identity_id":"[0-9a-f]{16}","state":"LINK_SENT","expire_time":"[^"]+","delivery_method":"RETURN","credential_binding_link":"http[^"]+"\}\n$/]



=== TEST 14: an unknown format
--- http_config
    # passkey: no defaults
    passkey_bind_format snake_case;
--- config
--- must_die
--- error_log
invalid value "snake_case"



=== TEST 15: one format per level
--- http_config
    # passkey: no defaults
    passkey_bind_format passkey;
    passkey_bind_format camel_case;
--- config
--- must_die
--- error_log
"passkey_bind_format" directive is duplicate
