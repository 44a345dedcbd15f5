# Cross-site requests: browser POSTs to bind and revoke only from the
# allowed origins (by default the request's own), judged by Origin, then
# Sec-Fetch-Site, then Referer; refused before the body is read.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use IO::Socket::INET;
use HTTP::Tiny;

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

# a bind for a user of its own, so that every request that passes gets
# a link (a second bind of one name in sign-up gets the 202 instead)
sub bind_req {
    my ($user, $location) = @_;
    return "POST " . ($location // '/passkey/bind')
           . "\n{\"username\":\"$user\"}";
}

our %Flows;

# $Flows{name}: Perl checks, after the block's last request
add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;

    return if $dry_run;

    my $reqs = $block->request;
    return unless $req_idx == (ref $reqs eq 'ARRAY' ? $#$reqs : 0);

    my ($key) = $block->name =~ /\bTEST \d+: (.*)$/;
    $Flows{$key}->($block, $block->name) if $key && $Flows{$key};
});

# the refused request's body is read and dropped: the next request on
# the connection is answered as such
$Flows{'a refused body does not spill into the next request'} = sub {
    my ($block, $name) = @_;

    my $sock = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $ENV{TEST_NGINX_SERVER_PORT},
        Timeout  => 10,
    ) or die "cannot connect to nginx: $!";

    my $inner = "GET /fake/stats HTTP/1.1\r\nHost: localhost\r\n\r\n";
    my $evil = qq({"username":"spill","x":"$inner"}) . (' ' x 4000);

    print $sock "POST /passkey/bind HTTP/1.1\r\nHost: localhost\r\n"
                . "Origin: https://evil.example.net\r\n"
                . "Content-Type: application/json\r\n"
                . "Content-Length: " . length($evil) . "\r\n\r\n$evil"
                . "POST /passkey/bind HTTP/1.1\r\nHost: localhost\r\n"
                . "Content-Type: application/json\r\n"
                . "Content-Length: 20\r\nConnection: close\r\n\r\n"
                . '{"username":"after"}';

    my $first = read_response($sock);
    Test::More::is($first->{status}, 403, "$name - the cross-site post: 403");
    Test::More::like($first->{content}, qr/"code":"forbidden_origin"/,
                     "$name - the cross-site post: forbidden_origin");

    my $second = read_response($sock);
    Test::More::is($second->{status}, 200, "$name - the next request: 200");
    Test::More::like($second->{content}, qr/"job_id"/,
                     "$name - the next request: its job");

    Test::More::ok(!defined <$sock>, "$name - nothing else was answered");
    close $sock;

    my $res = HTTP::Tiny->new(timeout => 10)->get(
        "http://127.0.0.1:$ENV{TEST_NGINX_BI_PORT}/__fake/stats?tenant="
        . block_tenant($block->seq_num));
    Test::More::like($res->{content}, qr/"create_identity":1,"create_job":1,/,
                     "$name - one bind reached the API");
};

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
['Content-Type: application/json', 'Content-Type: application/json',
 'Content-Type: application/problem\+json',
 'Content-Type: application/problem\+json', '']
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



=== TEST 8: refused before the body is read: its type and size do not matter
--- config
    location = /passkey/bind {
        passkey_max_body_size    64;
        passkey_duplicate_window off;
        passkey_bind;
    }
--- request eval
["POST /passkey/bind\nusername=ori",
 "POST /passkey/bind\n{\"username\":\"ori\",\"pad\":\"" . ('x' x 100) . "\"}",
 "POST /passkey/bind\n{\"username\":\"ori\",\"pad\":\"" . ('x' x 100) . "\"}",
 "GET /fake/stats"]
--- more_headers eval
["Content-Type: application/x-www-form-urlencoded\n"
 . "Origin: https://evil.example.net",
 main::headers('Origin: https://evil.example.net'),
 main::headers('Origin: http://localhost'),
 '']
--- error_code eval
[403, 403, 413, 200]
--- response_body_like eval
[qr/"code":"forbidden_origin"/, qr/"code":"forbidden_origin"/,
 qr/"code":"body_too_large"/, qr/"create_identity":0,"create_job":0,/]
--- no_error_log
unsupported content type



=== TEST 9: a refused body does not spill into the next request
--- request
GET /fake/stats
--- response_body_like: "create_identity":0,



=== TEST 10: a list: the Origin decides, look-alikes are refused
--- http_config
    passkey_allowed_origins https://app.example.com;
--- config
    location = /passkey/bind {
        passkey_duplicate_window off;
        passkey_bind;
    }
--- request eval
[main::bind_req('o1'), main::bind_req('o2'), main::bind_req('o3'), main::bind_req('o4'),
 main::bind_req('o5'), main::bind_req('o6'), main::bind_req('o7'), "GET /fake/requests"]
--- more_headers eval
[main::headers('Origin: https://app.example.com', 'Sec-Fetch-Site: cross-site'),
 main::headers('Origin: https://evil.example.net',
               'Sec-Fetch-Site: same-origin'),
 main::headers('Origin: https://app.example.com@evil.example.net'),
 main::headers('Origin: https://app.example.com.evil.example.net'),
 main::headers('Origin: http://app.example.com'),
 main::headers('Origin: https://app.example.com:8443'),
 main::headers('Origin: null', 'Referer: https://app.example.com/signup'),
 '']
--- error_code eval
[200, 403, 403, 403, 403, 403, 403, 200]
--- response_body_like eval
[qr/"job_id"/, qr/"code":"forbidden_origin"/, qr/"code":"forbidden_origin"/,
 qr/"code":"forbidden_origin"/, qr/"code":"forbidden_origin"/,
 qr/"code":"forbidden_origin"/, qr/"code":"forbidden_origin"/,
 # only o1 reached the API
 qr/^(?!.*\\"o[2-7]\\").*\\"username\\":\\"o1\\"/s]



=== TEST 11: no list: the request's own Host, Sec-Fetch-Site and Referer
--- request eval
[main::bind_req('h1'), main::bind_req('h2'), main::bind_req('h3'), main::bind_req('h4'),
 main::bind_req('h5'), main::bind_req('h6'), main::bind_req('h7'), main::bind_req('h8'),
 "GET /fake/stats"]
--- more_headers eval
[main::headers('Host: app.test:8080', 'Origin: http://app.test:8080'),
 main::headers('Host: app.test:8080', 'Origin: http://app.test'),
 main::headers('Origin: http://localhost.evil.example.net'),
 main::headers('Referer: http://localhost/signup?step=2'),
 main::headers('Referer: http://evil.example.net/localhost'),
 main::headers('Sec-Fetch-Site: Same-Origin'),
 main::headers('Sec-Fetch-Site: whatever'),
 main::headers('Origin: null', 'Sec-Fetch-Site: same-origin'),
 '']
--- error_code eval
[200, 403, 403, 200, 403, 200, 403, 403, 200]
--- response_body_like eval
[qr/"job_id"/, qr/"code":"forbidden_origin"/, qr/"code":"forbidden_origin"/,
 qr/"job_id"/, qr/"code":"forbidden_origin"/, qr/"job_id"/,
 qr/"code":"forbidden_origin"/, qr/"code":"forbidden_origin"/,
 qr/"create_identity":3,"create_job":3,/]



=== TEST 12: a list for the server, "off" for one location
--- http_config
    passkey_allowed_origins https://app.example.com;
--- config
    location = /passkey/bind {
        passkey_duplicate_window off;
        passkey_bind;
    }

    location = /open/bind {
        passkey_allowed_origins  off;
        passkey_duplicate_window off;
        passkey_bind;
    }
--- request eval
[main::bind_req('i1'), main::bind_req('i2', '/open/bind'), main::bind_req('i3'),
 "GET /fake/stats"]
--- more_headers eval
[main::headers('Origin: https://evil.example.net'),
 main::headers('Origin: https://evil.example.net'),
 main::headers('Origin: https://app.example.com'),
 '']
--- error_code eval
[403, 200, 200, 200]
--- response_body_like eval
[qr/"code":"forbidden_origin"/, qr/"job_id"/, qr/"job_id"/,
 qr/"create_identity":2,"create_job":2,/]



=== TEST 13: revoke: the same checks; a job's status is a GET, never refused
--- http_config
    passkey_allowed_origins https://app.example.com;
--- config
    location /passkey/revoke/ {
        passkey_job_revoke;
    }

    location /open/revoke/ {
        passkey_allowed_origins off;
        passkey_job_revoke;
    }

    location /passkey/jobs/ {
        passkey_job_status;
    }
--- request eval
["POST /passkey/revoke/0123456789abcdef:revoke",
 "POST /passkey/revoke/0123456789abcdef:revoke",
 "POST /passkey/revoke/0123456789abcdef:revoke",
 "POST /passkey/revoke/0123456789abcdef:revoke",
 "POST /passkey/revoke/0123456789abcdef:revoke",
 "POST /open/revoke/0123456789abcdef:revoke",
 "GET /passkey/jobs/0123456789abcdef"]
--- more_headers eval
['Origin: https://app.example.com',
 'Origin: https://evil.example.net',
 'Sec-Fetch-Site: cross-site',
 'Referer: https://evil.example.net/app.example.com',
 '',
 'Origin: https://evil.example.net',
 'Origin: https://evil.example.net']
--- error_code eval
[404, 403, 403, 403, 404, 404, 404]
--- response_body_like eval
[qr/"code":"unknown_job"/, qr/"code":"forbidden_origin"/,
 qr/"code":"forbidden_origin"/, qr/"code":"forbidden_origin"/,
 qr/"code":"unknown_job"/, qr/"code":"unknown_job"/,
 qr/"code":"unknown_job"/]
--- block_error_log
passkey: cross-site request refused: Sec-Fetch-Site is not same-origin
passkey: cross-site request refused: the Referer is not an allowed origin



=== TEST 14: "off" and a list of origins do not mix
--- config
    location = /passkey/bind {
        passkey_allowed_origins https://app.example.com;
        passkey_allowed_origins off;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_allowed_origins" directive cannot be "off" and list origins
