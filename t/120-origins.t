# Cross-site requests: browser POSTs to bind and revoke only from the
# allowed origins (by default the request's own), judged by Origin, then
# Sec-Fetch-Site, then Referer; refused before the body is read.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';

repeat_each(1);
no_shuffle();

our $Bind = "POST /passkey/bind\n{\"username\":\"ori\"}";

sub headers {
    return join "\n", 'Content-Type: application/json', @_;
}

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('config', ($block->config // '') . <<'CONF')
    location = /passkey/bind {
        passkey_duplicate_window off;
        passkey_bind;
    }
CONF
        unless ($block->config // '') =~ /passkey_bind;/;
});

run_tests();

__DATA__

=== TEST 1: no list: the page's own origin passes, another is refused
--- request eval
[$::Bind, $::Bind, $::Bind, $::Bind, "GET /fake/stats"]
--- more_headers eval
[main::headers('Origin: http://localhost'),
 main::headers('Origin: http://LOCALHOST'),
 main::headers('Origin: https://evil.example.net'),
 main::headers('Origin: null'),
 '']
--- error_code eval
[200, 202, 403, 403, 200]
--- response_body_like eval
[qr/"job_id"/, qr/"accepted"/, qr/"code":"forbidden_origin"/,
 qr/"code":"forbidden_origin"/, qr/"create_identity":2,/]
--- response_headers_like eval
[{}, {}, {"Content-Type" => qr{^application/problem\+json$}},
 {"Content-Type" => qr{^application/problem\+json$}}, {}]
--- block_error_log
passkey: cross-site request refused: the Origin is not allowed



=== TEST 2: a list: its origins pass, the request's own host no longer
--- http_config
    passkey_allowed_origins https://app.example.com http://localhost:8443;
--- request eval
[$::Bind, $::Bind, $::Bind, "GET /fake/stats"]
--- more_headers eval
[main::headers('Origin: https://APP.example.com'),
 main::headers('Origin: http://localhost:8443'),
 main::headers('Origin: http://localhost'),
 '']
--- error_code eval
[200, 202, 403, 200]
--- response_body_like eval
[qr/"job_id"/, qr/"accepted"/, qr/"code":"forbidden_origin"/,
 qr/"create_identity":2,/]



=== TEST 3: without Origin, Sec-Fetch-Site decides
--- request eval
[$::Bind, $::Bind, $::Bind, $::Bind, "GET /fake/stats"]
--- more_headers eval
[main::headers('Sec-Fetch-Site: same-origin'),
 main::headers('Sec-Fetch-Site: none'),
 main::headers('Sec-Fetch-Site: same-site'),
 main::headers('Sec-Fetch-Site: cross-site'),
 '']
--- error_code eval
[200, 202, 403, 403, 200]
--- response_body_like eval
[qr/"job_id"/, qr/"accepted"/, qr/"code":"forbidden_origin"/,
 qr/"code":"forbidden_origin"/, qr/"create_identity":2,/]
--- block_error_log
passkey: cross-site request refused: Sec-Fetch-Site is not same-origin



=== TEST 4: without either, the Referer's origin decides; with none, no browser
--- http_config
    passkey_allowed_origins https://app.example.com;
--- request eval
[$::Bind, $::Bind, $::Bind, "GET /fake/stats"]
--- more_headers eval
[main::headers('Referer: https://app.example.com/signup?x=1'),
 main::headers('Referer: https://app.example.com.evil.net/'),
 main::headers(),
 '']
--- error_code eval
[200, 403, 202, 200]
--- response_body_like eval
[qr/"job_id"/, qr/"code":"forbidden_origin"/, qr/"accepted"/,
 qr/"create_identity":2,/]
--- block_error_log
passkey: cross-site request refused: the Referer is not an allowed origin



=== TEST 5: "off" lets every origin through
--- config
    location = /passkey/bind {
        passkey_allowed_origins off;
        passkey_bind;
    }
--- request eval
$::Bind
--- more_headers
Content-Type: application/json
Origin: https://evil.example.net
--- error_code: 200
--- response_body_like: "job_id"



=== TEST 6: revoke refuses cross-site posts too, before looking at the job
--- config
    location /passkey/revoke/ {
        passkey_job_revoke;
    }
--- request
POST /passkey/revoke/0123456789abcdef:revoke
--- more_headers
Origin: https://evil.example.net
--- error_code: 403
--- response_body_like: "code":"forbidden_origin"
--- error_log
passkey: cross-site request refused: the Origin is not allowed



=== TEST 7: an origin must be an origin
--- config
    location = /passkey/bind {
        passkey_allowed_origins https://app.example.com/path;
        passkey_bind;
    }
--- must_die
--- error_log
invalid origin "https://app.example.com/path" in "passkey_allowed_origins": expected scheme://host[:port]
