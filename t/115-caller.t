# Who a bind is for, as seen by a caller.  Authenticated mode takes the
# user from what nginx verified (auth_basic's $remote_user, a header that
# a trusted upstream sets) and refuses bodies naming someone else before
# any API call; nginx -t refuses users the client writes.  Sign-up never
# hands out a link for a taken username, and every sign-up answer but
# "new name, RETURN" is the same 202, byte for byte.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use IO::Socket::INET;
use HTTP::Tiny;
use JSON::PP ();

repeat_each(1);
no_shuffle();

$ENV{TEST_NGINX_HTML_DIR} ||= html_dir();

our %Flows;

our $Accepted = qq({"state":"accepted","delivery_method":"EMAIL"}\n);

# Basic credentials of the htpasswd file below (short: the log check
# looks for long Basic values)
our %Basic = (alice => 'YWxpY2U6cHctYQ==',            # alice:pw-a
              wrong => 'YWxpY2U6cHctYg==');           # alice:pw-b

sub json_headers {
    return join "\n", 'Content-Type: application/json', @_;
}

# the stand-in's outbox holding exactly these messages, in this order
sub outbox {
    my $re = join ',', map { '\{[^{}]*"to":"' . quotemeta($_) . '"\}' } @_;
    return qr/^\{"messages":\[$re\]\}$/;
}

sub identity {
    my ($name, $email) = @_;
    my $json = qq({"realm":"r1","username":"$name");
    $json .= qq(,"email":"$email") if defined $email;
    return "POST /fake/identities\n$json}";
}

# One request on a connection of its own, as raw bytes: for answers that
# must be identical, headers included.
sub raw_post {
    my ($path, $body) = @_;

    my $sock = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $ENV{TEST_NGINX_SERVER_PORT},
        Timeout  => 10,
    ) or die "cannot connect to nginx: $!";

    print $sock "POST $path HTTP/1.1\r\nHost: localhost\r\n"
                . "Content-Type: application/json\r\n"
                . "Content-Length: " . length($body) . "\r\n"
                . "Connection: close\r\n\r\n$body";

    local $/;
    my $raw = <$sock>;
    close $sock;

    my ($status) = $raw =~ m{^HTTP/1\.1 (\d{3}) };
    my ($head, $content) = split /\r\n\r\n/, $raw, 2;

    # the only header that may differ from one answer to the next
    $head =~ s/^Date: [^\r]*\r\n//m;

    return { status => $status // 0, head => $head,
             content => $content // '' };
}

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('more_headers', 'Content-Type: application/json')
        unless defined $block->more_headers;
});

# "--- redis_jobs": after the block's last request, the jobs in Redis, as
# "username delivery_method" lines in sorted order (empty: none);
# $Flows{name}: Perl checks, after the block's last request
add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;

    return if $dry_run;

    my $reqs = $block->request;
    return unless $req_idx == (ref $reqs eq 'ARRAY' ? $#$reqs : 0);

    my ($key) = $block->name =~ /\bTEST \d+: (.*)$/;

    if (defined $block->redis_jobs) {
        my $want = join "\n", grep { /\S/ } split /\n/, $block->redis_jobs;
        Test::More::is(redis_jobs($block), $want,
                       $block->name . " - the jobs in redis");
    }

    if ($key && $Flows{$key}) {
        $Flows{$key}->($block, $block->name);
    }
});

# sign-up by EMAIL: whatever became of the name, the caller learns nothing
$Flows{'sign-up by EMAIL (the default): every answer is the same 202'} = sub {
    my ($block, $name) = @_;

    my @cases = (
        ['a free name', '{"username":"fresh","email":"fresh@example.com"}'],
        ['a taken name', '{"username":"taken","email":"x@example.net"}'],
        ['a taken name again (cooldown)',
         '{"username":"TAKEN","email":"y@example.net"}'],
        ['a taken name without an address (422)',
         '{"username":"mute","email":"m@example.net"}'],
        ['a free name with a taken address (409)',
         '{"username":"other","email":"owner@example.com"}'],
    );

    my $first;

    for my $case (@cases) {
        my ($what, $json) = @$case;
        my $res = raw_post('/signup', $json);

        Test::More::is($res->{status}, 202, "$name - $what: 202");
        Test::More::is($res->{content}, $Accepted, "$name - $what: the body");

        if (!defined $first) {
            $first = $res->{head};
            Test::More::like($first, qr{^HTTP/1\.1 202 Accepted\r\n},
                             "$name - $what: the status line");
            Test::More::like($first,
                             qr{^Content-Type: application/json\r$}m,
                             "$name - $what: the type");
        }

        Test::More::is($res->{head}, $first,
                       "$name - $what: the headers, but for Date");
    }

    # no address: refused alike, before anything is looked up
    my @missing = map { raw_post('/signup', $_) }
                  '{"username":"nobody"}', '{"username":"taken"}';

    for my $res (@missing) {
        Test::More::is($res->{status}, 400, "$name - no address: 400");
        $res->{content} =~ s/,"request_id":"\w+"//;
    }

    Test::More::like($missing[0]{content}, qr/"code":"missing_email"/,
                     "$name - no address: missing_email");
    Test::More::is($missing[1]{content}, $missing[0]{content},
                   "$name - no address: free and taken names alike");
    Test::More::is($missing[1]{head}, $missing[0]{head},
                   "$name - no address: the same headers");

    my $outbox = fake_get($block, 'outbox');
    my @to = sort map { $_->{to} } @{ $outbox->{messages} };
    Test::More::is("@to", 'fresh@example.com owner@example.com',
                   "$name - mail went to the new address and to the owner's");

    Test::More::is(redis_jobs($block),
                   "fresh EMAIL\nsigned-in RETURN\ntaken EMAIL",
                   "$name - the jobs in redis");

    # "signed-in" (looked up first: authenticated) and the five sign-ups;
    # the two without an address none
    my $stats = fake_get($block, 'stats');
    Test::More::is("$stats->{create_identity} $stats->{list_identities} "
                   . "$stats->{create_job}", '6 5 4',
                   "$name - identities created, looked up; jobs asked for");
};

sub fake_get {
    my ($block, $path) = @_;
    my $res = HTTP::Tiny->new(timeout => 10)->get(
        "http://127.0.0.1:$ENV{TEST_NGINX_BI_PORT}/__fake/$path?tenant="
        . block_tenant($block->seq_num));
    die "stand-in $path: $res->{status}" unless $res->{success};
    return JSON::PP::decode_json($res->{content});
}

run_tests();

__DATA__

=== TEST 1: auth_basic: the verified user binds, also an identity that exists
--- config
    location = /passkey/bind {
        auth_basic           "app";
        auth_basic_user_file ../html/users;

        passkey_bind_mode        authenticated;
        passkey_username         $remote_user;
        passkey_duplicate_window off;
        passkey_bind;
    }
--- user_files
>>> users
alice:{PLAIN}pw-a
--- request eval
[main::identity('alice', 'alice@example.com'),
 "POST /passkey/bind\n{}",
 "POST /passkey/bind\n{\"username\":\"alice\",\"display_name\":\"A\"}",
 "POST /passkey/bind\n{\"username\":\"bob\"}",
 "POST /passkey/bind\n{\"username\":\"bob\",\"email\":\"bob\@example.com\"}",
 "POST /passkey/bind\n{\"username\":\"alice\"}",
 "POST /passkey/bind\n{\"username\":\"alice\"}",
 "GET /fake/identities?realm=r1",
 "GET /fake/requests"]
--- more_headers eval
['Content-Type: application/json',
 main::json_headers("Authorization: Basic $::Basic{alice}"),
 main::json_headers("Authorization: Basic $::Basic{alice}"),
 main::json_headers("Authorization: Basic $::Basic{alice}"),
 main::json_headers("Authorization: Basic $::Basic{alice}"),
 main::json_headers(),
 main::json_headers("Authorization: Basic $::Basic{wrong}"),
 '', '']
--- error_code eval
[200, 200, 200, 403, 403, 401, 401, 200, 200]
--- response_body_like eval
[qr/"id":"[0-9a-f]{16}"/,
 qr/^\{"job_id":"[0-9a-f]{16}","identity_id":"[0-9a-f]{16}","state":"LINK_SENT","expire_time":"[^"]+","delivery_method":"RETURN","credential_binding_link":"http[^"]+"\}$/,
 qr/"credential_binding_link":"http/,
 qr/^\{"type":"urn:ngx-passkey:problem:identity_mismatch","title":"Forbidden","status":403,.*"code":"identity_mismatch"/,
 qr/"code":"identity_mismatch"/,
 qr/401 Authorization Required/, qr/401 Authorization Required/,
 # one identity, the one that was there: no second "alice"
 qr/^\{"identities":\[\{(?!.*"id":.*"id":).*"username":"alice"/s,
 # the first bind a look-up and a job, the second (remembering alice's
 # identity) a job only; nothing about bob
 qr/^(?!.*bob)(?:.*?"route":"list_identities")(?:.*?"route":"create_job"){2}(?!.*"route":"(?:create_identity|list_identities|create_job|get_identity)")/s]
--- redis_jobs
alice RETURN
alice RETURN
--- block_error_log
passkey: identity_mismatch: the request names another user than the signed-in one
user "alice": password mismatch



=== TEST 2: a trusted upstream's header: its user wins, the client's is dropped
--- http_config
    map $http_x_session $session_user {
        default "";
        s-carol carol;
    }

    map $http_x_session $session_email {
        default "";
        s-carol carol@example.com;
    }

    # the passkey server: only the application's proxy reaches it
    server {
        listen unix:$TEST_NGINX_HTML_DIR/passkey.sock;

        location = /passkey/bind {
            passkey_bind_mode        authenticated;
            passkey_username         $http_x_verified_user;
            passkey_email            $http_x_verified_email;
            passkey_duplicate_window off;
            passkey_bind;
        }
    }
--- config
    # the application: it knows the session, and says who it is for
    location = /passkey/bind {
        proxy_pass       http://unix:$TEST_NGINX_HTML_DIR/passkey.sock;
        proxy_set_header X-Verified-User  $session_user;
        proxy_set_header X-Verified-Email $session_email;
    }
--- request eval
["POST /passkey/bind\n{}",
 "POST /passkey/bind\n{\"username\":\"Carol\",\"email\":\"CAROL\@example.com\"}",
 "POST /passkey/bind\n{\"username\":\"mallory\"}",
 "POST /passkey/bind\n{\"email\":\"mallory\@example.net\"}",
 "POST /passkey/bind\n{\"username\":\"carol\"}",
 "GET /fake/identities?realm=r1"]
--- more_headers eval
[main::json_headers('X-Session: s-carol', 'X-Verified-User: mallory',
                    'X-Verified-Email: mallory@example.net'),
 main::json_headers('X-Session: s-carol'),
 main::json_headers('X-Session: s-carol'),
 main::json_headers('X-Session: s-carol'),
 main::json_headers('X-Verified-User: carol',
                    'X-Verified-Email: carol@example.com'),
 '']
--- error_code eval
[200, 200, 403, 403, 401, 200]
--- response_body_like eval
[qr/"credential_binding_link":"http/, qr/"credential_binding_link":"http/,
 qr/"code":"identity_mismatch"/, qr/"code":"identity_mismatch"/,
 qr/^\{"type":"urn:ngx-passkey:problem:unauthenticated","title":"Unauthorized","status":401,"detail":"sign in first: no verified user",.*"code":"unauthenticated"/,
 qr/^\{"identities":\[\{(?!.*"id":.*"id":)(?!.*mallory).*"primary_email_address":"carol\@example\.com","type":"traits_v0","username":"carol"/s]
--- redis_jobs
carol RETURN
carol RETURN
--- block_error_log
passkey: unauthenticated: sign in first: no verified user



=== TEST 3: authenticated without passkey_username
--- config
    location = /passkey/bind {
        passkey_bind_mode authenticated;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_bind_mode authenticated" requires "passkey_username" with the variable that holds the verified user name



=== TEST 4: authenticated with the user from the body
--- config
    location = /passkey/bind {
        passkey_bind_mode authenticated;
        passkey_username  $passkey_json_username;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_bind_mode authenticated" cannot take the user from the request body, arguments or cookies



=== TEST 5: authenticated with the user from an argument
--- config
    location = /passkey/bind {
        passkey_bind_mode authenticated;
        passkey_username  $arg_user;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_bind_mode authenticated" cannot take the user from the request body, arguments or cookies



=== TEST 6: authenticated with the user from a cookie
--- config
    location = /passkey/bind {
        passkey_bind_mode authenticated;
        passkey_username  $cookie_user;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_bind_mode authenticated" cannot take the user from the request body, arguments or cookies



=== TEST 7: authenticated with the user in the query string
--- config
    location = /passkey/bind {
        passkey_bind_mode authenticated;
        passkey_username  "u-${query_string}";
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_bind_mode authenticated" cannot take the user from the request body, arguments or cookies



=== TEST 8: authenticated with the email from the request URI
--- config
    location = /passkey/bind {
        passkey_bind_mode authenticated;
        passkey_username  $remote_user;
        passkey_email     $REQUEST_URI;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_bind_mode authenticated" cannot take the user from the request body, arguments or cookies



=== TEST 9: sign-up by RETURN: a free name gets its link, a taken one nothing
--- config
    location = /signup {
        passkey_bind_mode signup;
        passkey_bind;
    }
--- request eval
[main::identity('Taken', 'owner@example.com'),
 "POST /signup\n{\"username\":\"newbie\"}",
 "POST /signup\n{\"username\":\"taken\"}",
 "POST /signup\n{\"username\":\"TAKEN\",\"email\":\"x\@example.net\",\"delivery_method\":\"RETURN\"}",
 "GET /fake/stats", "GET /fake/outbox"]
--- error_code eval
[200, 200, 202, 202, 200, 200]
--- response_body eval
[qr/"id"/, qr/"credential_binding_link":"http/, $::Accepted, $::Accepted,
 qr/"create_identity":3,"create_job":1,.*"list_identities":2,/,
 main::outbox()]
--- redis_jobs
newbie RETURN
--- block_error_log
passkey: sign-up refused: the username is taken by identity



=== TEST 10: sign-up with "email": an EMAIL job to the address BI holds
--- config
    location = /signup {
        passkey_bind_mode       signup;
        passkey_signup_existing email;
        passkey_bind;
    }
--- request eval
[main::identity('Taken', 'owner@example.com'),
 "POST /signup\n{\"username\":\"taken\",\"email\":\"attacker\@example.net\",\"delivery_method\":\"RETURN\"}",
 "GET /fake/outbox", "GET /fake/requests", "GET /fake/identities?realm=r1"]
--- error_code eval
[200, 202, 200, 200, 200]
--- response_body_like eval
[qr/"id"/, qr/^\Q$::Accepted\E\z/,
 main::outbox('owner@example.com'),
 # the job went out by EMAIL, whatever the request asked for
 qr/^(?!.*RETURN).*\{"body":"\{\\"job\\":\{\\"delivery_method\\":\\"EMAIL\\"/s,
 qr/^(?!.*attacker).*"primary_email_address":"owner\@example\.com"/s]
--- redis_jobs
taken EMAIL



=== TEST 11: sign-up by EMAIL (the default): every answer is the same 202
--- http_config
    # passkey: no defaults
    passkey_api_url http://127.0.0.1:$TEST_NGINX_BI_PORT;
    passkey_auth_url http://127.0.0.1:$TEST_NGINX_BI_AUTH_PORT;
    passkey_tenant_id @TENANT@;
    passkey_realm_id r1;
    passkey_authenticator_config_id 67bb0acf12e5c899;
    passkey_application_id app1;
    passkey_client_id passkey-client;
    passkey_client_secret_file $TEST_NGINX_SECRETS/client_secret;
    passkey_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    passkey_redis_prefix test:@TENANT@:;
--- config
    location /fake/ {
        rewrite ^/fake/(.*)$ /__fake/$1?tenant=@TENANT@ break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BI_PORT;
    }

    # sign-up is the default mode, and EMAIL its default delivery
    location = /signup {
        passkey_signup_existing  email;
        passkey_duplicate_window off;
        passkey_bind;
    }

    # authenticated mode's default delivery is RETURN
    location = /app/bind {
        passkey_bind_mode authenticated;
        passkey_username  $http_x_user;
        passkey_bind;
    }
--- fake_config
{"email_conflict":true}
--- request eval
[main::identity('Taken', 'owner@example.com'),
 main::identity('Mute'),
 "POST /app/bind\n{}"]
--- more_headers eval
['', '', main::json_headers('X-User: signed-in')]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[qr/"id"/, qr/"id"/,
 qr/"delivery_method":"RETURN","credential_binding_link":"http/]



=== TEST 12: sign-up: a second email within the cooldown is not sent
--- config
    location = /signup {
        passkey_bind_mode        signup;
        passkey_signup_existing  email;
        passkey_delivery_method  EMAIL;
        passkey_email_cooldown   1h;
        passkey_duplicate_window off;
        passkey_bind;
    }
--- request eval
[main::identity('Taken', 'owner@example.com'),
 "POST /signup\n{\"username\":\"taken\",\"email\":\"a\@example.net\"}",
 "POST /signup\n{\"username\":\"taken\",\"email\":\"a\@example.net\"}",
 "POST /signup\n{\"username\":\"Taken\",\"email\":\"b\@example.net\"}",
 "GET /fake/outbox", "GET /fake/stats"]
--- error_code eval
[200, 202, 202, 202, 200, 200]
--- response_body eval
[qr/"id"/, $::Accepted, $::Accepted, $::Accepted,
 main::outbox('owner@example.com'),
 qr/"create_identity":3,"create_job":1,.*"list_identities":3,/]
--- redis_jobs
taken EMAIL
--- block_error_log
it had one less than passkey_email_cooldown ago



=== TEST 13: authenticated: a second email within the cooldown is 429
--- config
    location = /passkey/bind {
        passkey_bind_mode        authenticated;
        passkey_username         $http_x_user;
        passkey_delivery_method  EMAIL;
        passkey_email_cooldown   30s;
        passkey_duplicate_window off;
        passkey_bind;
    }
--- request eval
[main::identity('dana', 'dana@example.com'),
 main::identity('eve', 'eve@example.com'),
 "POST /passkey/bind\n{}", "POST /passkey/bind\n{}",
 "POST /passkey/bind\n{}", "GET /fake/outbox"]
--- more_headers eval
['', '', main::json_headers('X-User: dana'),
 main::json_headers('X-User: dana'), main::json_headers('X-User: eve'), '']
--- error_code eval
[200, 200, 200, 429, 200, 200]
--- response_body_like eval
[qr/"id"/, qr/"id"/,
 qr/^\{"job_id":"\w+","identity_id":"\w+","state":"LINK_SENT","expire_time":"[^"]+","delivery_method":"EMAIL"\}$/,
 qr/^\{"type":"urn:ngx-passkey:problem:email_cooldown","title":"Too Many Requests","status":429,.*"code":"email_cooldown"/,
 qr/"delivery_method":"EMAIL"/,
 main::outbox('dana@example.com', 'eve@example.com')]
--- response_headers_like eval
['', '', 'Retry-After: ', 'Retry-After: (?:[12]?\d|30)', 'Retry-After: ', '']
--- redis_jobs
dana EMAIL
eve EMAIL
--- block_error_log
passkey: email_cooldown: an email with a binding link was sent to this user a moment ago
