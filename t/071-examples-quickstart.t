# examples/nginx.conf, the quick start and the safe setup, started (on
# test ports, against the stand-in, Redis and the example app
# util/demo-app: t/Examples.pm) and answering the way its comments and the
# README's quick start say: the demo login; "add a passkey to my account"
# for the signed-in user only (no session: 401; a body naming someone
# else: 403), by RETURN and by EMAIL, the emailed link followed through
# the stand-in's outbox to /app/bind and handed to the app; sign-up by
# email with the same 202 for free and taken usernames; cross-site
# requests refused; jobs readable and revocable by their owner only; the
# limits.  None of the logs, nginx's or the app's, may hold a token, a
# binding link or a session.
#
# The other two hand-over styles are in t/073-examples-handover.t, and
# the quick start's two passkey locations as plain Test::Nginx blocks in
# t/072-examples-quickstart-blocks.t.  No blocks here: the tests are the
# requests below.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use t::Examples;

# emailed links land on this file's nginx
fake_config(qq({"invoke_url":"$nginx_url/app"}));

ok(start_app(), 'util/demo-app starts')
    or diag(`cat $base/app/app.out`);

# the quick start, the safe setup, step by step as in the README
{
    my $prefix = render('nginx.conf');
    my $name = 'examples/nginx.conf';
    my $site = "$nginx_url";
    ok(start($prefix), "$name starts");

    # --- add a passkey to my account: RETURN ---------------------------

    my $res = post_bind('{}');
    is($res->{status}, 401, "$name: no session, no bind");
    unlike($res->{content}, qr/job_id|token=/, "$name: ... and no job");

    my $alice = login($name, 'example-alice', 'example-alice@example.com');

    # the demo login is a toy, but not one that signs anyone in as alice
    $res = ua()->post_form("$nginx_url/login",
        { username => 'EXAMPLE-alice', password => 'not-her-password' });
    is($res->{status}, 401, "$name: another password for alice: 401");
    my $set = $res->{headers}{'set-cookie'} // '';
    unlike(ref $set ? "@$set" : $set, qr/demo_session=/,
           "$name: ... and no session");

    # one account per name, as Beyond Identity compares names: alice's,
    # named as it was first spelled, whatever the case typed
    $res = ua()->post_form("$nginx_url/login",
        { username => 'EXAMPLE-Alice',
          password => 'example-alice-demo-password' });
    is($res->{status}, 200, "$name: alice signs in as EXAMPLE-Alice");
    is(decode($res)->{user}, 'example-alice',
       "$name: ... to her account, as it is spelled");

    # names that nginx or Beyond Identity could read as another's
    for my $user ('example-alice ', ' example-alice', "example\x{a0}alice",
                  "example-alice\x{200b}", 'example  alice') {
        $res = ua()->post_form("$nginx_url/login",
            { username => $user, password => 'a-password-of-mine' });
        is($res->{status}, 400, "$name: the demo login refuses a lookalike");
        like($res->{content}, qr/"invalid_username"/,
             "$name: ... as an invalid username");
    }

    # a name with a space and letters beyond ASCII passes whole: the app
    # percent-encodes it in X-User, the module decodes it
    my $juergen = login($name, "example J\x{fc}rgen",
                        'juergen@example.com');
    $res = post_bind('{}', Cookie => $juergen);
    is($res->{status}, 200, "$name: J\x{fc}rgen binds");
    like(identities(), qr/"username":"example J\xc3\xbcrgen"/,
         "$name: ... as the identity \"example J\x{fc}rgen\"");

    $res = post_bind('{}', Cookie => $alice);
    is($res->{status}, 200, "$name: signed in, a bind answers 200");
    my ($job) = $res->{content} =~ /"job_id":"([0-9a-f]+)"/;
    ok($job, "$name: the answer names the job");
    like($res->{content},
         qr/"delivery_method":"RETURN".*"credential_binding_link":"http/,
         "$name: RETURN by default, with the link");
    is($res->{headers}{'x-passkey-job'}, $job,
       "$name: X-Passkey-Job names it too");
    is($res->{headers}{'ratelimit-limit'}, 10,
       "$name: 10 binds a minute per user (RateLimit-Limit)");
    both_headers("$name: the bind", $res);

    like(identities(), qr/"username":"example-alice"/,
         "$name: the identity is the signed-in user's");

    # a double click makes one job
    $res = post_bind('{}', Cookie => $alice);
    problem("$name: the same request again at once", $res, 409,
            'duplicate_request');
    ok($res->{headers}{'retry-after'}, "$name: ... with Retry-After");

    # the body cannot name someone else
    $res = post_bind('{"username":"example-mallory"}', Cookie => $alice);
    problem("$name: a body naming another user", $res, 403,
            'identity_mismatch');
    unlike($res->{content}, qr/token=/, "$name: ... gets no link");

    $res = post_bind('{"email":"mallory@example.com"}', Cookie => $alice);
    problem("$name: a body naming another address", $res, 403,
            'identity_mismatch');

    unlike(identities(), qr/example-mallory|mallory\@/,
           "$name: ... and nothing was created for them");

    # another site's page cannot use alice's session (CSRF); this site's
    # own pages can
    $res = post_bind('{"delivery_method":"RETURN"}', Cookie => $alice,
                     Origin => 'https://evil.example');
    problem("$name: a cross-site Origin", $res, 403, 'forbidden_origin');

    $res = post_bind('{"delivery_method":"RETURN"}', Cookie => $alice,
                     'Sec-Fetch-Site' => 'cross-site');
    problem("$name: Sec-Fetch-Site: cross-site", $res, 403,
            'forbidden_origin');

    $res = post_bind('{"delivery_method":"RETURN"}', Cookie => $alice,
                     Origin => $site);
    is($res->{status}, 200, "$name: this site's own Origin may bind");

    # --- add a passkey to my account: EMAIL -----------------------------

    $res = post_bind('{"delivery_method":"EMAIL"}', Cookie => $alice);
    is($res->{status}, 200, "$name: an EMAIL bind answers 200");
    like($res->{content}, qr/"delivery_method":"EMAIL"/,
         "$name: the answer says EMAIL");
    unlike($res->{content}, qr/credential_binding_link|token=/,
           "$name: the answer has no link");
    my ($email_job) = $res->{content} =~ /"job_id":"(\w+)"/;

    my ($mail) = grep { $_->{job_id} eq ($email_job // '') } outbox();
    ok($mail, "$name: Beyond Identity mailed the link");
    is($mail && $mail->{to}, 'example-alice@example.com',
       "$name: ... to the address of alice's account");

    my $flow = $mail ? follow_mail($name, $mail) : {};

    $res = get($flow->{url}, Accept => 'application/json');
    is($res->{status}, 200, "$name: /app/bind reaches the app");
    both_headers("$name: /app/bind", $res);

    my $got = decode($res);
    sdk_record_link($got->{binding_link});
    is($got->{binding_link}, $flow->{url},
       "$name: the app got the link byte for byte");
    is($got->{job_id}, $flow->{job}, "$name: ... and the job id");
    is($got->{identity_id}, $flow->{identity},
       "$name: ... and the identity id");

    replayed($name, $flow);

    # one email per existing identity per minute: the user is told
    $res = post_bind('{"delivery_method":"EMAIL","display_name":"A"}',
                     Cookie => $alice);
    problem("$name: another email at once", $res, 429, 'email_cooldown');
    ok($res->{headers}{'retry-after'}, "$name: ... with Retry-After");

    # --- the jobs: their owner's business --------------------------------

    $res = get("$nginx_url/passkey/jobs/$email_job", Cookie => $alice);
    is($res->{status}, 200, "$name: alice reads her job");
    like($res->{content}, qr/"state":"COMPLETE"/,
         "$name: ... the passkey was made");
    like($res->{content}, qr/"opened_at":"\d{4}-/,
         "$name: ... after the link was opened");
    unlike($res->{content}, qr/token=|invokeAuthenticator/,
           "$name: ... and no link in it");

    $res = get("$nginx_url/passkey/jobs/$email_job");
    is($res->{status}, 401, "$name: no session, no job");

    my $bob = login($name, 'example-bob');

    $res = get("$nginx_url/passkey/jobs/$email_job", Cookie => $bob);
    problem("$name: bob asks about alice's job", $res, 404, 'unknown_job');

    $res = ua()->post("$nginx_url/passkey/jobs/$job:revoke",
                      { headers => { Cookie => $bob } });
    problem("$name: bob revokes alice's job", $res, 404, 'unknown_job');

    $res = ua()->post("$nginx_url/passkey/jobs/$job:revoke",
                      { headers => { Cookie => $alice,
                                     Origin => 'https://evil.example' } });
    problem("$name: a cross-site revoke", $res, 403, 'forbidden_origin');

    $res = ua()->post("$nginx_url/passkey/jobs/$job:revoke",
                      { headers => { Cookie => $alice } });
    is($res->{status}, 200, "$name: alice revokes her job");
    like($res->{content}, qr/"state":"REVOKED"/, "$name: ... REVOKED");

    # the demo logout drops the cookie (the session is signed, not kept
    # by the app: a copy of the cookie would stay valid for its hour)
    $res = ua()->post("$nginx_url/logout", { headers => { Cookie => $bob } });
    is($res->{status}, 200, "$name: the demo logout answers");
    like($res->{headers}{'set-cookie'} // '', qr/expires=Thu, 01 Jan 1970/,
         "$name: ... and drops the cookie");

    # --- sign-up by email --------------------------------------------------

    # a new username: 202, the link by email to the address given
    my $carol = 'example-carol@example.com';
    $res = post_signup(qq({"username":"example-carol","email":"$carol"}));
    is($res->{status}, 202, "$name: a new user's sign-up answers 202");
    is($res->{content}, $accepted, "$name: ... accepted");
    both_headers("$name: the sign-up", $res);
    my $new = $res;

    ($mail) = grep { $_->{to} eq $carol } outbox();
    ok($mail, "$name: ... and carol gets the link by email");
    my $carol_flow = $mail ? follow_mail("$name, carol", $mail) : {};
    $res = get($carol_flow->{url}, Accept => 'application/json');
    sdk_record_link(decode($res)->{binding_link});
    is(decode($res)->{binding_link}, $carol_flow->{url},
       "$name: ... which the app gets");

    # a taken username: the same answer; the link goes to the owner's
    # own address, never to the one in the request
    my $dave = login($name, 'example-dave', 'example-dave@example.com');
    $res = post_bind('{}', Cookie => $dave);
    is($res->{status}, 200, "$name: dave has an identity");

    my $before = () = outbox();
    $res = post_signup('{"username":"example-dave",'
                       . '"email":"mallory@example.com"}');
    is($res->{status}, $new->{status},
       "$name: a taken username's sign-up: the same status");
    is($res->{content}, $new->{content}, "$name: ... the same body");
    is($res->{headers}{'content-type'}, $new->{headers}{'content-type'},
       "$name: ... the same Content-Type");

    my @mails = outbox();
    my @sent = @mails[$before .. $#mails];
    is(scalar @sent, 1, "$name: ... one email");
    is($sent[0] && $sent[0]->{to}, 'example-dave@example.com',
       "$name: ... to dave's own address");
    ok(!grep({ $_->{to} eq 'mallory@example.com' } @mails),
       "$name: ... none to the address in the request");

    # within the cooldown: the same answer again, and no email
    $res = post_signup('{"username":"example-dave",'
                       . '"email":"mallory2@example.com"}');
    is($res->{content}, $accepted,
       "$name: a sign-up within the cooldown: the same answer");
    is(scalar(() = outbox()), scalar @mails, "$name: ... and no email");

    # what a sign-up refuses
    $res = post_signup('{"username":"example-erin"}');
    problem("$name: a sign-up without an email", $res, 400,
            'missing_email');

    $res = post_signup('{"username":"example-erin",'
                       . '"email":"erin@example.com",'
                       . '"delivery_method":"RETURN"}');
    problem("$name: a sign-up asking for the link", $res, 400,
            'invalid_delivery_method');

    $res = post_signup('{"username":"example-erin",'
                       . '"email":"erin@example.com"}',
                       Origin => 'https://evil.example');
    problem("$name: a cross-site sign-up", $res, 403, 'forbidden_origin');

    unlike(identities(), qr/example-erin/,
           "$name: ... none of them created anything");

    # three sign-ups an hour per address
    for my $i (1 .. 3) {
        $res = post_signup(qq({"username":"example-flood-$i",)
                           . qq("email":"flood\@example.com"}));
    }
    is($res->{status}, 202, "$name: three sign-ups to one address");
    $res = post_signup('{"username":"example-flood-4",'
                       . '"email":"flood@example.com"}');
    problem("$name: ... a fourth", $res, 429, 'rate_limited');
    ok($res->{headers}{'retry-after'}, "$name: ... with Retry-After");

    # the page a browser gets holds the link only where its script reads it
    my $second = email_flow("$name, HTML");
    $res = get($second->{url});
    is($res->{status}, 200, "$name: a browser gets the app's page");
    like($res->{content}, qr/<h1>Set up your passkey<\/h1>/,
         "$name: ... the binding page");

    # the app trusts X-Passkey-Link from nginx only: a client's own never
    # reaches it, also past the exact location
    for my $path ('/app/bind/', '/app/done') {
        $res = get("$nginx_url$path", Accept => 'application/json',
                   'X-Passkey-Link' => "$nginx_url/app/bind?forged=1");
        unlike($res->{content}, qr/forged/,
               "$name: a client's X-Passkey-Link does not reach $path");
    }

    # the session check is nginx's business only
    $res = get("$nginx_url/_auth", Cookie => $alice);
    is($res->{status}, 404, "$name: /_auth is internal");

    # many fresh accounts from one address: the per-address limit ends it
    my ($made, $limited) = (0, undef);
    for my $i (1 .. 25) {
        my $cookie = login($name, "example-many-$i");
        $res = post_bind('{}', Cookie => $cookie);
        if ($res->{status} != 200) {
            $limited = $res;
            last;
        }
        $made++;
    }
    ok($limited && $made < 21,
       "$name: one address gets at most 21 jobs in a row ($made)");
    problem("$name: ... then", $limited // {}, 429, 'rate_limited');

    stop($prefix);

    my $log = slurp("$prefix/logs/access.log");
    my $want = qr{"POST /passkey/bind HTTP/1\.1" 200 .* }
               . qr{user=example-alice job=\Q$job\E method=RETURN};
    like($log, qr/$want/,
         "$name: the access log has the user and the job id");
    $want = qr{"GET /app/bind\?api_base_url=\S+&job_id=\Q$flow->{job}\E}
            . qr{&realm_id=demo&tenant_id=\Q$tenant\E&token=- HTTP/1\.1" 200 };
    like($log, qr/$want/,
         "$name: the access log shows /app/bind with token=-");

    logs_clean($name, "$prefix/logs", $flow, $carol_flow, $second);
    logs_clean("util/demo-app", "$base/app", $flow, $carol_flow, $second);
}

stop_app();
