# A link only for the verified person, whatever the name looks like.
#
# The session check here is an nginx location behind auth_request, reached
# over a real upstream connection, so its X-User header is parsed (and
# trimmed) by nginx as an application's would be.  "X-As" picks the name
# it says, the way a session cookie would.  The identity "victim" exists;
# names that nginx, a proxy or Beyond Identity could read as "victim" get
# no link and no job for it, and those the module can refuse up front
# cost no API call.  Also: strict JSON members and Content-Type, client
# bytes in the log escaped and bounded, at "info".

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use HTTP::Tiny;
use JSON::PP ();

repeat_each(1);
no_shuffle();

log_level('info');

our %Flows;

sub victim {
    return "POST /fake/identities\n"
           . '{"realm":"r1","username":"victim","email":"victim@example.com"}';
}

sub json_headers {
    return join "\n", 'Content-Type: application/json', @_;
}

sub nginx_url { "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}" }

sub post_bind {
    my ($as, $json) = @_;
    my $res = HTTP::Tiny->new(timeout => 10)->post(
        nginx_url() . '/passkey/bind',
        { headers => { 'Content-Type' => 'application/json', 'X-As' => $as },
          content => $json // '{}' });
    sdk_record_link(sdk_links_in($res->{content}));
    return $res;
}

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('more_headers', 'Content-Type: application/json')
        unless defined $block->more_headers;

    return unless ($block->config // '') =~ /# session check/;

    $block->set_value('config', $block->config . <<'CONF');
    location = /_auth {
        internal;
        proxy_pass               http://127.0.0.1:$TEST_NGINX_SERVER_PORT/session;
        proxy_pass_request_body  off;
        proxy_set_header         Content-Length  "";
    }

    # the application's session check: 204 and the user in X-User
    location = /session {
        if ($http_x_as = "") {
            return 401;
        }
        add_header X-User $http_x_as;
        return 204;
    }
CONF
});

# "--- redis_jobs": the jobs in Redis after the block's last request
Test::Nginx::Socket::add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;

    return if $dry_run || !defined $block->redis_jobs;

    my $reqs = $block->request;
    return unless $req_idx == (ref $reqs eq 'ARRAY' ? $#$reqs : 0);

    my $want = join "\n", grep { /\S/ } split /\n/, $block->redis_jobs;
    Test::More::is(redis_jobs($block), $want,
                   $block->name . " - the jobs in redis");
});

# a job of victim's, then the status as read by "Victim" and by victim
$Flows{'job owners are compared byte for byte'} = sub {
    my ($block, $name) = @_;

    my $res = post_bind('victim');
    Test::More::is($res->{status}, 200, "$name - victim binds");
    my ($job) = $res->{content} =~ /"job_id":"(\w+)"/;

    my $ua = HTTP::Tiny->new(timeout => 10);

    for my $as ('Victim', 'VICTIM', 'victim%20') {
        $res = $ua->get(nginx_url() . "/passkey/jobs/$job",
                        { headers => { 'X-As' => $as } });
        Test::More::is($res->{status}, $as =~ /%/ ? 403 : 404,
                       "$name - \"$as\" cannot read it");
        Test::More::unlike($res->{content}, qr/"job_id"/,
                           "$name - ... nor learn of it");
    }

    $res = $ua->post(nginx_url() . "/passkey/jobs/$job:revoke",
                     { headers => { 'X-As' => 'Victim' } });
    Test::More::is($res->{status}, 404, "$name - \"Victim\" cannot revoke it");

    $res = $ua->get(nginx_url() . "/passkey/jobs/$job",
                    { headers => { 'X-As' => 'victim' } });
    Test::More::is($res->{status}, 200, "$name - victim reads it");
    Test::More::like($res->{content}, qr/"state":"LINK_SENT"/,
                     "$name - ... not revoked");
    Test::More::is(redis_jobs($block), 'victim RETURN',
                   "$name - one job in redis, victim's");
};

run_flows(\%Flows);

run_tests();

__DATA__

=== TEST 1: names that read as "victim" once trimmed or folded are refused, no API call
--- config
    location = /passkey/bind {
        # session check
        auth_request      /_auth;
        auth_request_set  $user  $upstream_http_x_user;

        passkey_bind_mode        authenticated;
        passkey_username         $user;
        passkey_duplicate_window off;
        passkey_bind;
    }
--- request eval
[main::victim(),
 "POST /passkey/bind\n{}", "POST /passkey/bind\n{}",
 "POST /passkey/bind\n{}", "POST /passkey/bind\n{}",
 "POST /passkey/bind\n{}", "POST /passkey/bind\n{}",
 "POST /passkey/bind\n{}", "POST /passkey/bind\n{}",
 "POST /passkey/bind\n{}",
 "GET /fake/stats", "GET /fake/identities?realm=r1"]
--- more_headers eval
['',
 main::json_headers('X-As: victim%20'),
 main::json_headers('X-As: %20victim'),
 main::json_headers('X-As: victim%20%20'),
 main::json_headers('X-As: vic%20%20tim'),
 main::json_headers('X-As: vic%C2%A0tim'),
 main::json_headers('X-As: victim%E2%80%8B'),
 main::json_headers('X-As: %EF%BB%BFvictim'),
 main::json_headers('X-As: victim%C0%A0'),
 main::json_headers('X-As: victim%2'),
 '', '']
--- error_code eval
[200, 403, 403, 403, 403, 403, 403, 403, 403, 403, 200, 200]
--- response_body_like eval
[qr/"id":"[0-9a-f]{16}"/,
 (qr/^\{"type":"urn:ngx-passkey:problem:invalid_verified_user","title":"Forbidden","status":403,"detail":"the signed-in user cannot be bound safely","code":"invalid_verified_user","request_id":"\w+"\}$/) x 9,
 # not one call to Beyond Identity (the token is the worker's, at start)
 qr/^\{"authenticator_config":0,"create_identity":0,"create_job":0,"get_identity":0,"get_job":0,"invoke":0,"list_identities":0,"list_jobs":0,"revoke_job":0,"token":[01]\}$/,
 # victim's identity only, untouched
 qr/^\{"identities":\[\{(?!.*"id":.*"id":).*"username":"victim"\}/s]
--- redis_jobs
--- block_error_log eval
[qr/\[error\] .*passkey: the verified username "victim " is not one that can be bound safely/,
 qr/\[error\] .*passkey: the verified username " victim" is not one/,
 qr/\[error\] .*passkey: the verified username "vic\\xc2\\xa0tim" is not one/,
 qr/\[error\] .*passkey: the verified username is not validly percent-encoded/]



=== TEST 2: a name that differs by case only gets no job on the other identity
--- config
    location = /passkey/bind {
        # session check
        auth_request      /_auth;
        auth_request_set  $user  $upstream_http_x_user;

        passkey_bind_mode        authenticated;
        passkey_username         $user;
        passkey_duplicate_window off;
        passkey_bind;
    }
--- request eval
[main::victim(),
 "POST /passkey/bind\n{}", "POST /passkey/bind\n{\"delivery_method\":\"RETURN\"}",
 "POST /passkey/bind\n{}",
 "GET /fake/stats", "GET /fake/identities?realm=r1"]
--- more_headers eval
['',
 main::json_headers('X-As: Victim'), main::json_headers('X-As: VICTIM'),
 main::json_headers('X-As: victim'),
 '', '']
--- error_code eval
[200, 403, 403, 200, 200, 200]
--- response_body_like eval
[qr/"id":"[0-9a-f]{16}"/,
 qr/^\{"type":"urn:ngx-passkey:problem:identity_mismatch","title":"Forbidden","status":403,"detail":"the signed-in user's identity is spelled otherwise","code":"identity_mismatch","request_id":"\w+"\}$/,
 qr/"code":"identity_mismatch"/,
 # victim itself binds, on its identity
 qr/^\{"job_id":"[0-9a-f]{16}","identity_id":"[0-9a-f]{16}","state":"LINK_SENT",.*"credential_binding_link":"http/,
 # the refused ones created nothing: one job, victim's; each bind looked
 # up first (authenticated mode), and found the identity
 qr/"create_identity":0,"create_job":1,.*"list_identities":3,/,
 qr/^\{"identities":\[\{(?!.*"id":.*"id":).*"username":"victim"\}/s]
--- redis_jobs
victim RETURN
--- block_error_log eval
[qr/\[error\] .*passkey: identity [0-9a-f]{16} is spelled otherwise than the verified username/]



=== TEST 3: job owners are compared byte for byte
--- config
    location = /passkey/bind {
        # session check
        auth_request      /_auth;
        auth_request_set  $user  $upstream_http_x_user;

        passkey_bind_mode        authenticated;
        passkey_username         $user;
        passkey_bind;
    }

    location /passkey/jobs/ {
        auth_request      /_auth;
        auth_request_set  $user  $upstream_http_x_user;

        passkey_bind_mode  authenticated;
        passkey_username   $user;
        passkey_job_status;

        location ~ :revoke$ {
            passkey_job_revoke;
        }
    }
--- request eval
main::victim()
--- error_code: 200



=== TEST 4: a percent-encoded name is decoded, and a plain one is its own encoding
--- config
    location = /passkey/bind {
        # session check
        auth_request      /_auth;
        auth_request_set  $user  $upstream_http_x_user;

        passkey_bind_mode        authenticated;
        passkey_username         $user;
        passkey_email            $http_x_mail;
        passkey_duplicate_window off;
        passkey_bind;
    }
--- request eval
["POST /passkey/bind\n{}", "POST /passkey/bind\n{}",
 "POST /passkey/bind\n{}", "GET /fake/identities?realm=r1"]
--- more_headers eval
[main::json_headers('X-As: J%C3%BCrgen%20M%C3%BCller',
                    'X-Mail: j%2Bm%25x@example.com'),
 main::json_headers('X-As: plain.name@example.com', 'X-Mail: p@example.com'),
 main::json_headers('X-As: J%C3%BCrgen%20M%C3%BCller', 'X-Mail: %zz'),
 '']
--- error_code eval
[200, 200, 403, 200]
--- response_body_like eval
[qr/"credential_binding_link":"http/, qr/"credential_binding_link":"http/,
 qr/"code":"invalid_verified_user"/,
 qr/"primary_email_address":"j\+m%x\@example\.com","type":"traits_v0","username":"J\x{c3}\x{bc}rgen M\x{c3}\x{bc}ller"/]
--- redis_jobs
Jürgen Müller RETURN
plain.name@example.com RETURN



=== TEST 5: sign-up refuses the same lookalike names, at 400
--- config
    location = /passkey/bind {
        passkey_bind;
    }
--- request eval
["POST /passkey/bind\n{\"username\":\"victim \"}",
 "POST /passkey/bind\n{\"username\":\" victim\"}",
 "POST /passkey/bind\n{\"username\":\"vic\\u00a0tim\"}",
 "POST /passkey/bind\n{\"username\":\"victim\\u200b\"}",
 "POST /passkey/bind\n{\"username\":\"victim\",\"display_name\":\"Victim \"}",
 "GET /fake/stats"]
--- error_code eval
[400, 400, 400, 400, 400, 200]
--- response_body_like eval
[(qr/"code":"invalid_username"/) x 4, qr/"code":"invalid_display_name"/,
 qr/"create_identity":0,"create_job":0,/]
--- block_error_log eval
[qr/\[info\] .*passkey: invalid_username: the username must be 1 to 64 characters/]
--- no_error_log
[error]



=== TEST 6: members that are not strings are refused, naming the member
--- config
    location = /passkey/bind {
        passkey_bind;
    }
--- request eval
["POST /passkey/bind\n{\"username\":\"u6\",\"email\":1}",
 "POST /passkey/bind\n{\"username\":\"u6\",\"email\":[]}",
 "POST /passkey/bind\n{\"username\":\"u6\",\"email\":{}}",
 "POST /passkey/bind\n{\"username\":\"u6\",\"email\":true}",
 "POST /passkey/bind\n{\"username\":\"u6\",\"email\":null}",
 "POST /passkey/bind\n{\"username\":\"u6\",\"display_name\":1}",
 "POST /passkey/bind\n{\"username\":\"u6\",\"display_name\":null}",
 "POST /passkey/bind\n{\"username\":[\"u6\"]}",
 "GET /fake/stats"]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 400, 200]
--- response_body_like eval
[(qr/^\{"type":"urn:ngx-passkey:problem:invalid_email","title":"Bad Request","status":400,"detail":"the email address must be a string","code":"invalid_email"/) x 5,
 (qr/"detail":"the display name must be a string","code":"invalid_display_name"/) x 2,
 qr/"detail":"the username must be a string","code":"invalid_username"/,
 qr/"create_identity":0,"create_job":0,/]
--- no_error_log
[error]



=== TEST 7: one Content-Type, application/json with parameters, or 415
--- config
    location = /passkey/bind {
        passkey_bind;
    }
--- request eval
["POST /passkey/bind\n{\"username\":\"u7\"}",
 "POST /passkey/bind\n{\"username\":\"u7\"}",
 "POST /passkey/bind\n{\"username\":\"u7\"}",
 "POST /passkey/bind\n{\"username\":\"u7\"}",
 "POST /passkey/bind\n{\"username\":\"u7\"}",
 "POST /passkey/bind\n{\"username\":\"u7b\"}",
 "POST /passkey/bind\n{\"username\":\"u7c\"}"]
--- more_headers eval
["Content-Type: application/json text/html",
 "Content-Type: application/json\nContent-Type: application/json",
 "Content-Type: application/json\nContent-Type: text/plain",
 "Content-Type: application/jsonx",
 "Content-Type: application/json, text/html",
 "Content-Type: application/json ; charset=utf-8",
 "Content-Type: Application/JSON;charset=utf-8"]
--- error_code eval
[415, 415, 415, 415, 415, 200, 200]
--- response_body_like eval
[(qr/"code":"unsupported_media_type"/) x 5,
 (qr/"credential_binding_link":"http/) x 2]



=== TEST 8: what a client sends reaches the log escaped, bounded, at info
--- config
    location = /passkey/bind {
        passkey_bind;
    }
--- raw_request eval
my $type = "application/x-\e[31mred\e[0m\xff" . ('A' x 7000);
"POST /passkey/bind HTTP/1.1\r\nHost: localhost\r\n"
. "Content-Type: $type\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
--- error_code: 415
--- response_body_like: "code":"unsupported_media_type"
--- error_log eval
qr/\[info\] .*passkey: unsupported content type "application\/x-\\x1b\[31mred\\x1b\[0m\\xffA{37}\.\.\."/
--- no_error_log eval
[qr/\e/, qr/\xff/, qr/A{42}/, qr/\[error\]/]



=== TEST 9: bad JSON is the client's mistake: info, not error
--- config
    location = /passkey/bind {
        passkey_bind;
    }
--- request eval
["POST /passkey/bind\n{", "POST /passkey/bind\n[1]", "POST /passkey/bind\n\"x\""]
--- error_code eval
[400, 400, 400]
--- response_body_like eval
[(qr/"code":"invalid_json"/) x 3]
--- error_log
[info]
passkey: invalid_json: the request body must be a JSON object
--- no_error_log
[error]
