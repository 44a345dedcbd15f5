# Every way the Beyond Identity API can fail maps to a clear problem+json
# answer with the right status, and a line in error_log.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';

repeat_each(1);
no_shuffle();

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('more_headers', 'Content-Type: application/json')
        unless defined $block->more_headers;

    if (!defined $block->config || $block->config !~ /passkey_bind/) {
        $block->set_value('config', ($block->config // '') . <<'CONF');
    location = /passkey/bind {
        passkey_api_timeout 1s;
        passkey_bind;
    }
CONF
    }
});

sub fault {
    my ($json) = @_;
    return "POST /fake/faults\n$json";
}

sub bind_req {
    my ($user) = @_;
    return "POST /passkey/bind\n{\"username\":\"$user\",\"email\":\"$user\@example.com\"}";
}

run_tests();

__DATA__

=== TEST 1: the identity vanished before the job (404)
--- fault
{"route":"create_job","type":"status","status":404,"body":"{\"code\":\"not_found\",\"message\":\"identity not found\"}"}
--- request eval
main::bind_req("u1")
--- error_code: 404
--- response_body_like eval
qr/^\{"type":"urn:ngx-passkey:problem:not_found","title":"Not Found","status":404,"detail":"identity not found","code":"not_found","request_id":"[0-9a-f]{32}"\}$/
--- error_log eval
qr/passkey: POST \/identities\/[0-9a-f]{16}\/credential-binding-jobs answered 404 "not_found" "identity not found"/



=== TEST 2: a conflict on the job (409)
--- fault
{"route":"create_job","type":"status","status":409,"body":"{\"code\":\"conflict\",\"message\":\"job conflict\"}"}
--- request eval
main::bind_req("u2")
--- error_code: 409
--- response_body_like eval
qr/"status":409,"detail":"job conflict","code":"conflict"/



=== TEST 3: an identity without email cannot get an email job (422)
--- fault
{"route":"create_job","type":"status","status":422,"body":"{\"code\":\"unprocessable_entity\",\"message\":\"Identity missing email address\"}"}
--- request eval
main::bind_req("u3")
--- error_code: 422
--- response_body_like eval
qr/"status":422,"detail":"Identity missing email address","code":"unprocessable"/



=== TEST 4: Beyond Identity rejects the identity (400)
--- fault
{"route":"create_identity","type":"status","status":400,"body":"{\"code\":\"bad_request\",\"message\":\"invalid parameters\"}"}
--- request eval
main::bind_req("u4")
--- error_code: 400
--- response_body_like eval
qr/"status":400,"detail":"invalid parameters","code":"invalid_identity"/



=== TEST 5: a 400 on the job is this server's fault (502)
--- fault
{"route":"create_job","type":"status","status":400}
--- request eval
main::bind_req("u5")
--- error_code: 502
--- response_body_like eval
qr/"code":"api_rejected_request"/



=== TEST 6: a 500 from the API
--- fault
{"route":"create_identity","type":"status","status":500}
--- request eval
main::bind_req("u6")
--- error_code: 502
--- response_body_like eval
qr/"status":502,"detail":"the Beyond Identity API failed","code":"api_error"/
--- error_log
passkey: POST /identities answered 500



=== TEST 7: a 503 from the API
--- fault
{"route":"create_job","type":"status","status":503}
--- request eval
main::bind_req("u7")
--- error_code: 502
--- response_body_like eval
qr/"code":"api_error"/



=== TEST 8: an HTML 502 from a proxy in front of the API
--- fault
{"route":"create_identity","type":"status","status":502}
--- request eval
main::bind_req("u8")
--- error_code: 502
--- response_body_like eval
qr/"code":"api_error"/



=== TEST 9: rate limited by the API (429 becomes 503 with Retry-After)
--- fault
{"route":"create_identity","type":"status","status":429,"retry_after":"7"}
--- request eval
main::bind_req("u9")
--- error_code: 503
--- response_headers
Retry-After: 7
--- response_body_like eval
qr/"code":"api_rate_limited"/



=== TEST 10: truncated JSON
--- fault
{"route":"create_job","type":"malformed"}
--- request eval
main::bind_req("u10")
--- error_code: 502
--- response_body_like eval
qr/"code":"api_bad_response"/
--- error_log
response is not a JSON object



=== TEST 11: JSON of the wrong shape
--- fault
{"route":"create_job","type":"wrong_shape"}
--- request eval
main::bind_req("u11")
--- error_code: 502
--- response_body_like eval
qr/"code":"api_bad_response"/
--- error_log
the new job lacks its id, state or binding link



=== TEST 12: the connection is reset
The first call to the API host opens a new connection, which libcurl
never resends on: one reset is final.
--- fault
{"route":"create_identity","type":"reset"}
--- request eval
[main::bind_req("u12"), "GET /fake/requests"]
--- error_code eval
[502, 200]
--- response_body_like eval
[qr/"code":"api_unreachable"/,
 qr/\A(?!(?s:.*)"route":"create_identity"(?s:.*)"route":"create_identity").*"route":"create_identity"/s]
--- block_error_log
passkey: POST /identities failed:



=== TEST 13: a job POST is never sent twice
The job POST goes out on the connection the identity POST left open, and
the stand-in resets it after reading the request.  libcurl would send it
again on a new connection (the stand-in would then create the job, and a
retry by the client a second one); the module lets it fail instead.
--- fault
{"route":"create_job","type":"reset"}
--- request eval
[main::bind_req("u12b"), "GET /fake/requests"]
--- error_code eval
[502, 200]
--- response_body_like eval
[qr/"code":"api_unreachable"/,
 qr/\A(?!(?s:.*)"route":"create_job"(?s:.*)"route":"create_job").*"route":"create_job"/s]
--- block_error_log eval
qr/passkey: POST \/identities\/[0-9a-f]{16}\/credential-binding-jobs failed: the kept connection closed after the request went out; it is not sent again/



=== TEST 14: nothing listens at the API address
--- config
    location = /passkey/bind {
        passkey_api_url http://127.0.0.1:1;
        passkey_bind;
    }
--- request eval
main::bind_req("u13")
--- error_code: 502
--- response_body_like: "code":"api_unreachable"
--- error_log
Couldn't connect to server



=== TEST 15: the API does not answer in time (504)
--- fault
{"route":"create_identity","type":"delay","delay_ms":3000}
--- request eval
main::bind_req("u14")
--- error_code: 504
--- response_body_like eval
qr/"status":504,.*"code":"api_timeout"/
--- error_log
passkey: POST /identities failed: Timeout was reached



=== TEST 16: a body that stalls half way (504)
--- fault
{"route":"create_job","type":"stall"}
--- request eval
main::bind_req("u15")
--- error_code: 504
--- response_body_like eval
qr/"code":"api_timeout"/



=== TEST 17: a response larger than passkey_api_buffer_size
--- fault eval
'{"route":"create_job","type":"status","status":200,"body":"{\\"id\\":\\"'
. ('x' x 2000) . '\\"}"}'
--- config
    location = /passkey/bind {
        passkey_api_buffer_size 1k;
        passkey_bind;
    }
--- request eval
main::bind_req("u16")
--- error_code: 502
--- response_body_like: "code":"api_bad_response"
--- error_log
response too large



=== TEST 18: the token endpoint refuses the credentials
--- config
    location = /passkey/bind {
        passkey_client_secret_file $TEST_NGINX_SECRETS/wrong_secret;
        passkey_bind;
    }
--- http_config
--- request eval
main::bind_req("u17")
--- error_code: 502
--- response_body_like: "code":"api_credentials_rejected"
--- error_log
answered 401 "invalid_client"



=== TEST 19: unknown job states are passed through
--- fault
{"route":"create_job","type":"state","state":"SOMETHING_NEW"}
--- request eval
main::bind_req("u18")
--- error_code: 200
--- response_body_like eval
qr/"state":"SOMETHING_NEW"/
--- redis_job
state: ^SOMETHING_NEW$



=== TEST 20: a failed creation is not retried (no duplicate jobs)
--- request eval
[main::fault('{"route":"create_job","type":"status","status":500}'),
 main::bind_req("u19"),
 "GET /fake/stats"]
--- error_code eval
[200, 502, 200]
--- response_body_like eval
[qr/./, qr/api_error/, qr/"create_identity":1,"create_job":1,/]



=== TEST 21: a Retry-After that is neither seconds nor a date is dropped
--- fault
{"route":"create_identity","type":"status","status":429,"retry_after":"soon"}
{"route":"create_identity","type":"status","status":429,"retry_after":"-5"}
{"route":"create_identity","type":"status","status":429,"retry_after":"1234567890123"}
{"route":"create_identity","type":"status","status":429,"retry_after":"7, 8"}
--- request eval
[main::bind_req("u30"), main::bind_req("u30"), main::bind_req("u30"),
 main::bind_req("u30")]
--- error_code eval
[503, 503, 503, 503]
--- response_headers eval
["!Retry-After", "!Retry-After", "!Retry-After", "!Retry-After"]
--- response_body_like eval
[qr/"code":"api_rate_limited"/, qr/"code":"api_rate_limited"/,
 qr/"code":"api_rate_limited"/, qr/"code":"api_rate_limited"/]



=== TEST 22: an HTTP-date in Retry-After is passed on as seconds
--- fault eval
use POSIX ();
# an hour ahead: nginx may take a while to start under valgrind
my $at = POSIX::strftime('%a, %d %b %Y %H:%M:%S GMT', gmtime(time + 3600));
my $past = POSIX::strftime('%a, %d %b %Y %H:%M:%S GMT', gmtime(time - 30));
qq({"route":"create_identity","type":"status","status":429,"retry_after":"$at"}\n)
. qq({"route":"create_identity","type":"status","status":429,"retry_after":"$past"}\n)
--- request eval
[main::bind_req("u31"), main::bind_req("u31")]
--- error_code eval
[503, 503]
--- response_headers_like eval
["Retry-After: (?:3[0-5]\\d\\d|3600)", "Retry-After: 0"]



=== TEST 23: an identity id from the API that does not fit in a URL
--- fault
{"route":"create_identity","type":"status","status":200,"body":"{\"id\":\"../../x\",\"display_name\":\"u32\",\"traits\":{\"type\":\"traits_v0\",\"username\":\"u32\"}}"}
{"route":"create_identity","type":"status","status":409}
{"route":"list_identities","type":"status","status":200,"body":"{\"identities\":[{\"id\":\"a?b\",\"display_name\":\"u32\",\"traits\":{\"type\":\"traits_v0\",\"username\":\"u32\"}}],\"total_size\":1}"}
--- request eval
[main::bind_req("u32"), main::bind_req("u32"), "GET /fake/stats"]
--- error_code eval
[502, 502, 200]
--- response_body_like eval
[qr/"code":"api_bad_response"/, qr/"code":"api_bad_response"/,
 qr/"create_job":0,/]
--- block_error_log
no valid "id" in the new identity
an identity in the list response has no valid "id"
