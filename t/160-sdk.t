# Beyond Identity's own JavaScript SDK takes the links the module hands
# out: util/sdk/oracle runs the published @beyondidentity/bi-sdk-js
# (pinned in util/sdk/package-lock.json) under Node.
#
# - bindPasskey() on the credential_binding_link of a RETURN bind sends
#   its GET to the stand-in's :invokeAuthenticator route with exactly the
#   job's token (what Beyond Identity answers there is not public, so the
#   binding itself cannot complete against the stand-in);
# - isBindPasskeyUrl() is true for that link and for the /bind URL an
#   emailed link leads to, and false for what is not a link, so the
#   suite-wide check (util/run-tests, on every link the suite saw) can
#   fail.
#
# Each flow runs in a response body check, after its block's request.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use HTTP::Tiny;
use IPC::Open2 qw(open2);
use JSON::PP ();

repeat_each(1);
no_shuffle();

our %Flows;
our $Oracle = 'util/sdk/oracle';

sub bi_url { "http://127.0.0.1:$ENV{TEST_NGINX_BI_PORT}" }

sub ua { HTTP::Tiny->new(timeout => 30, max_redirect => 0) }

# the stand-in's control API for the block's tenant: decoded JSON
sub fake {
    my ($block, $method, $path, $json) = @_;
    my $tenant = block_tenant($block->seq_num);
    my $res = ua()->request($method, bi_url() . "/__fake/$path?tenant=$tenant",
        defined $json ? { headers => { 'Content-Type' => 'application/json' },
                          content => $json } : {});
    die "stand-in $method $path: $res->{status} $res->{content}"
        unless $res->{success};
    return JSON::PP::decode_json($res->{content});
}

# util/sdk/oracle MODE, the links on its standard input (never on its
# command line): its exit code and output
sub oracle {
    my ($mode, @links) = @_;

    my $pid = open2(my $out, my $in, $Oracle, $mode);
    print $in map { "$_\n" } @links;
    close $in;
    my $output = do { local $/; <$out> } // '';
    waitpid $pid, 0;

    return ($? >> 8, $output);
}

# sign-up binds, by RETURN unless the block says otherwise
add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('more_headers', 'Content-Type: application/json');

    if (!defined $block->config) {
        $block->set_value('config', <<'CONF');
    location = /passkey/bind {
        passkey_bind;
    }
CONF
    }
});

add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;

    return if $dry_run;

    my ($key) = $block->name =~ /\bTEST \d+: (.*)$/;
    my $flow = $key && $Flows{$key} or return;

    $flow->($block, $block->name, $body);
});


$Flows{"bindPasskey sends the link's token to :invokeAuthenticator"} = sub {
    my ($block, $name, $body) = @_;

    my ($link) = sdk_links_in($body);
    my ($job) = $body =~ /"job_id":"(\w+)"/;
    ok($link && $job, "$name - the module answered a job and its link")
        or return;

    # the SDK follows the stand-in's 302 to {invoke_url}/bind: keep that
    # on the stand-in, which answers 404 and logs no query
    fake($block, 'POST', 'config',
         '{"invoke_url":"' . bi_url() . '/sdk-oracle"}');

    my $token = fake($block, 'GET', "jobs/$job")->{token};
    ok(length $token >= 20, "$name - the stand-in names the job's token");

    my ($rc, $out) = oracle('bind', $link);
    is($rc, 0, "$name - the SDK sent a request") or diag($out);
    like($out, qr/^isBindPasskeyUrl: true$/m,
         "$name - isBindPasskeyUrl() is true for the link");
    like($out, qr/^request: GET \S+:invokeAuthenticator\?token=\.\.\. -> 404 /m,
         "$name - its GET of the link followed the stand-in's 302");
    ok(index($out, $token) < 0, "$name - the oracle printed no token");

    my @invoke = grep { $_->{route} eq 'invoke' }
                 @{ fake($block, 'GET', 'requests')->{requests} };
    is(scalar @invoke, 1, "$name - one request reached :invokeAuthenticator")
        or return;

    my $req = $invoke[0];
    is($req->{method}, 'GET', "$name - a GET");
    like($req->{path},
         qr{/credential-binding-jobs/\Q$job\E:invokeAuthenticator$},
         "$name - of the job's link");
    ok($req->{query} eq "token=$token",
       "$name - with exactly the job's token, as the query");
    is($req->{headers}{accept}, 'application/json',
       "$name - Accept: application/json");
    is($req->{status}, 302, "$name - the stand-in took the token (302)");
    is(fake($block, 'GET', "jobs/$job")->{job}{state}, 'LINK_OPENED',
       "$name - the job's link was opened");
};


$Flows{"isBindPasskeyUrl: the link, and what is not a link"} = sub {
    my ($block, $name, $body) = @_;

    my ($link) = sdk_links_in($body);
    ok($link, "$name - the module answered a link") or return;

    my ($rc, $out) = oracle('check', $link);
    is($rc, 0, "$name - the SDK takes the link") or diag($out);
    like($out, qr/^sdk: isBindPasskeyUrl\(\) is true for 1 of 1 /m,
         "$name - ... and says so");

    (my $no_token = $link) =~ s/\?.*//;
    (my $other_method = $link) =~ s/:invokeAuthenticator\?/:revoke?/;
    my $nginx = "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}";

    for my $not ($no_token, $other_method, "$nginx/passkey/bind",
                 "$nginx/app/bind?job_id=0123456789abcdef&token=x", 'link')
    {
        ($rc, $out) = oracle('check', $link, $not);
        is($rc, 1, "$name - the check fails with a non-link in it");
        like($out, qr/^FALSE /m, "$name - ... which it names");
        like($out, qr/^sdk: isBindPasskeyUrl\(\) is true for 1 of 2 /m,
             "$name - ... and counts");
    }

    like($out, qr/^FALSE \(not a URL, 4 characters\)$/m,
         "$name - what is not a URL is not shown either");
    ok(index($out, $link) < 0 && $out !~ /token=[^.]/,
       "$name - the oracle printed no token");

    ($rc, $out) = oracle('check');
    is($rc, 1, "$name - no URL at all fails the check too");
};


$Flows{"an emailed link's /bind URL is a Bind URL"} = sub {
    my ($block, $name, $body) = @_;

    my ($mail) = grep { $_->{to} eq 'sdk-carol@example.com' }
                 @{ fake($block, 'GET', 'outbox')->{messages} };
    ok($mail, "$name - Beyond Identity mailed the link") or return;

    # the user clicks: a 302 to {invoke_url}/bind?..., here this block's
    # nginx (the URL is not requested)
    fake($block, 'POST', 'config', '{"invoke_url":"http://127.0.0.1:'
         . "$ENV{TEST_NGINX_SERVER_PORT}/app\"}");
    my $res = ua()->get($mail->{link});
    is($res->{status}, 302, "$name - the mailed link answers 302");
    my $url = $res->{headers}{location} // '';
    like($url, qr{/app/bind\?.*\btoken=}, "$name - to /app/bind");

    sdk_record_link($url);

    my ($rc, $out) = oracle('check', $url);
    is($rc, 0, "$name - the SDK takes the /bind URL") or diag($out);
    like($out, qr/^sdk: isBindPasskeyUrl\(\) is true for 1 of 1 /m,
         "$name - ... and says so");
};

run_tests();

__DATA__

=== TEST 1: bindPasskey sends the link's token to :invokeAuthenticator
--- request
POST /passkey/bind
{"username":"sdk-alice"}
--- error_code: 200
--- response_body_like: "RETURN","credential_binding_link":"http



=== TEST 2: isBindPasskeyUrl: the link, and what is not a link
--- request
POST /passkey/bind
{"username":"sdk-bob"}
--- error_code: 200
--- response_body_like: "RETURN","credential_binding_link":"http



=== TEST 3: an emailed link's /bind URL is a Bind URL
--- config
    location = /passkey/bind {
        passkey_delivery_method EMAIL;
        passkey_bind;
    }
--- request
POST /passkey/bind
{"username":"sdk-carol","email":"sdk-carol@example.com"}
--- error_code: 202
--- response_body_like: "delivery_method":"EMAIL"
