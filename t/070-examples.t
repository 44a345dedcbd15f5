# The configurations in examples/ work as shipped: each passes "nginx -t",
# and each is started (on test ports, against the stand-in, Redis and the
# example app util/demo-app) and answers the way its comments and the
# README's quick start say:
#
# - examples/nginx.conf, the safe setup: the demo login; "add a passkey
#   to my account" for the signed-in user only (no session: 401; a body
#   naming someone else: 403), by RETURN and by EMAIL; sign-up by email
#   with the same 202 for free and taken usernames; cross-site requests
#   refused; jobs readable and revocable by their owner only; the limits;
# - an emailed link followed through the stand-in's outbox to /app/bind,
#   handed over in each of the three styles;
# - behind-auth.conf: the user from a login service;
# - frontends.conf: Beyond Identity's example frontends, request by
#   request as they send them, each reading the link where it looks for
#   it, with CORS for the two cross-origin pages.
#
# None of their logs may hold a token or a binding link.  The blocks after
# __DATA__ run the quick start's two passkey locations as plain
# Test::Nginx blocks.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use HTTP::Tiny;
use JSON::PP ();
use URI::Escape qw(uri_unescape);
use File::Path qw(make_path remove_tree);
use Time::HiRes qw(sleep);
use POSIX ();

repeat_each(1);
no_shuffle();
run_tests();

my $nginx = $ENV{TEST_NGINX_BINARY} || 'nginx';
my ($module) = split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} || '');
my $base = ($ENV{TEST_NGINX_SERVROOT} || 't/servroot') . '-examples';
my $port = ($ENV{TEST_NGINX_SERVER_PORT} || 1984) + 100;
my $app_port = $port + 2;
my $tenant = block_tenant('examples');
my $nginx_url = "http://127.0.0.1:$port";
my $bi_url = "http://127.0.0.1:$ENV{TEST_NGINX_BI_PORT}";
my $auth_url = "http://127.0.0.1:$ENV{TEST_NGINX_BI_AUTH_PORT}";
my $auth_arg = "http%3A%2F%2F127.0.0.1%3A$ENV{TEST_NGINX_BI_AUTH_PORT}";
my $users = 0;

# the sign-up answer, whatever happened
my $accepted = qq({"state":"accepted","delivery_method":"EMAIL"}\n);

# nginx instances this file started, and the app: stopped however it ends
my %running;
my $app_pid;

END {
    stop($_) for keys %running;
    stop_app();
}

# the example as a user would edit it: module path, ports, tenant
sub render {
    my ($name) = @_;

    my $prefix = "$base/$name";
    remove_tree($prefix);
    make_path("$prefix/conf", "$prefix/logs", "$prefix/tmp", "$prefix/html");

    my $conf = slurp("examples/$name") or die "examples/$name: $!";

    $conf =~ s/^load_module .*;$/load_module $module;/m;
    # as Test::Nginx does: workers of a root master could not read the
    # pages in this private directory as "nobody"
    my $user = $> == 0 ? "\nuser root;" : '';
    $conf =~ s/^worker_processes .*;$/worker_processes 1;$user/m;
    $conf =~ s/127\.0\.0\.1:18999/127.0.0.1:$ENV{TEST_NGINX_BI_PORT}/g;
    $conf =~ s/127\.0\.0\.1:18997/127.0.0.1:$ENV{TEST_NGINX_BI_AUTH_PORT}/g;
    $conf =~ s/127\.0\.0\.1:16379/127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT}/g;
    $conf =~ s/127\.0\.0\.1:(8080|8090)\b/127.0.0.1:$port/g;
    $conf =~ s/127\.0\.0\.1:8091\b/127.0.0.1:@{[$port + 1]}/g;
    $conf =~ s/127\.0\.0\.1:8081\b/127.0.0.1:$app_port/g;
    $conf =~ s/(passkey_tenant_id\s+)demo;/$1$tenant;/;

    # this run's own Redis keys (limits, locks), also where the file
    # keeps the default prefix
    $conf =~ s/(passkey_redis_prefix\s+)\S+;/$1test:$tenant:;/
        or $conf =~ s/^(\s*passkey_redis\s+\S+;)$/$1
    passkey_redis_prefix test:$tenant:;/m;

    open my $out, '>', "$prefix/conf/nginx.conf" or die;
    print $out $conf;
    close $out;

    system("cp $ENV{TEST_NGINX_SECRETS}/client_secret $prefix/conf/") == 0
        or die "cannot copy the client secret";
    chmod 0600, "$prefix/conf/client_secret";

    # the pages, where "make demo" puts them
    system("cp examples/*.html $prefix/html/") == 0
        or die "cannot copy the example pages";

    return $prefix;
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return undef;
    local $/;
    return <$fh>;
}

sub nginx {
    my ($prefix, @args) = @_;
    return system("$nginx -p $prefix/ -c conf/nginx.conf @args"
                  . " >$prefix/logs/stderr 2>&1") == 0;
}

sub start {
    my ($prefix) = @_;
    nginx($prefix) or return 0;
    $running{$prefix} = 1;
    for (1 .. 50) {
        return 1 if HTTP::Tiny->new(timeout => 1)
                        ->get("$nginx_url/")->{status} != 599;
        sleep 0.1;
    }
    return 0;
}

sub stop {
    my ($prefix) = @_;
    delete $running{$prefix};
    nginx($prefix, '-s', 'quit');
    for (1 .. 50) {
        last unless -e "$prefix/logs/nginx.pid";
        sleep 0.1;
    }
}

# util/demo-app, as "make demo" runs it
sub start_app {
    my $dir = "$base/app";
    remove_tree($dir);
    make_path($dir);

    $app_pid = fork() // die "fork: $!";

    if ($app_pid == 0) {
        open STDOUT, '>', "$dir/app.out";
        open STDERR, '>&', \*STDOUT;
        exec 'util/demo-app', '--listen', "127.0.0.1:$app_port",
             '--pid-file', "$dir/app.pid", '--log-file', "$dir/app.log"
            or POSIX::_exit(127);
    }

    for (1 .. 100) {
        return 1 if -s "$dir/app.pid";
        sleep 0.1;
    }
    return 0;
}

sub stop_app {
    return unless $app_pid;
    kill 'TERM', $app_pid;
    waitpid($app_pid, 0);
    $app_pid = undef;
}

sub ua { HTTP::Tiny->new(timeout => 10, max_redirect => 0) }

# POST a JSON body to one of the passkey endpoints
sub post_json {
    my ($path, $json, %headers) = @_;
    my $res = ua()->post("$nginx_url$path",
        { headers => { 'Content-Type' => 'application/json', %headers },
          content => $json });
    sdk_record_link(sdk_links_in($res->{content}));
    return $res;
}

sub post_bind { post_json('/passkey/bind', @_) }
sub post_signup { post_json('/passkey/signup', @_) }

sub get {
    my ($url, %headers) = @_;
    return ua()->get($url, { headers => \%headers });
}

sub decode {
    my ($res) = @_;
    return eval { JSON::PP::decode_json($res->{content}) } || {};
}

sub identities {
    my $res = get("$bi_url/__fake/identities?tenant=$tenant&realm=demo");
    return $res->{content};
}

sub outbox {
    my $res = get("$bi_url/__fake/outbox?tenant=$tenant");
    return @{ decode($res)->{messages} || [] };
}

# the demo login: POST /login (a form, as the README's curl sends it);
# the session cookie for the requests that follow
sub login {
    my ($name, $user, $email) = @_;

    my $res = ua()->post_form("$nginx_url/login",
        { username => $user, password => "$user-demo-password",
          (defined $email ? (email => $email) : ()) });
    is($res->{status}, 200, "$name: the demo login signs $user in");
    is(decode($res)->{user}, $user, "$name: ... and says so");

    my $set = $res->{headers}{'set-cookie'} // '';
    my ($cookie) = map { /^(demo_session=[^;]+)/ ? $1 : () }
                   ref $set ? @$set : $set;
    ok($cookie, "$name: ... with a session cookie");
    like(ref $set ? "@$set" : $set, qr/;\s*HttpOnly/i,
         "$name: ... that scripts cannot read");

    return $cookie // 'demo_session=none';
}

# An emailed link followed as the README tells it: the mail in the
# stand-in's outbox, its link (on the auth host) answered with a 302 to
# /app/bind?... with the six arguments in alphabetical order, as Beyond
# Identity sends them, api_base_url the auth host.
sub follow_mail {
    my ($name, $mail, $identity) = @_;

    like($mail->{link}, qr{^\Q$auth_url\E/v1/},
         "$name: the mailed link is on the auth host");

    my $res = get($mail->{link});
    is($res->{status}, 302, "$name: the mailed link answers 302");

    my $url = $res->{headers}{location} // '';
    sdk_record_link($url);
    $identity //= $mail->{identity_id};
    my $want = qr{^\Q$nginx_url\E/app/bind\?api_base_url=\Q$auth_arg\E}
                . qr{&identity_id=\Q$identity\E&job_id=\Q$mail->{job_id}\E}
                . qr{&realm_id=demo&tenant_id=\Q$tenant\E}
                . qr{&token=[\w-]{64}$};
    like($url, qr/$want/,
         "$name: ... to /app/bind with the six arguments");

    my ($token) = $url =~ /[?&]token=([^&]+)/;

    return { job => $mail->{job_id}, identity => $identity, url => $url,
             token => $token // 'no token', link => $mail->{link} };
}

# The sign-up by email of a new user: 202, and the mail to the address
# the request gave.
sub email_flow {
    my ($name) = @_;
    my $user = "example-email-" . ++$users;
    my $email = "$user\@example.com";

    my $res = post_signup(qq({"username":"$user","email":"$email"}));
    is($res->{status}, 202, "$name: a sign-up answers 202");
    is($res->{content}, $accepted, "$name: ... accepted, by EMAIL");
    unlike($res->{content}, qr/job_id|identity_id|token=/,
           "$name: ... and nothing else");

    my ($mail) = grep { $_->{to} eq $email } outbox();
    ok($mail, "$name: Beyond Identity mailed the link to $email")
        or return {};

    return follow_mail($name, $mail);
}

sub both_headers {
    my ($name, $res) = @_;
    is($res->{headers}{'cache-control'}, 'no-store',
       "$name: Cache-Control: no-store");
    is($res->{headers}{'referrer-policy'}, 'no-referrer',
       "$name: Referrer-Policy: no-referrer");
}

sub problem {
    my ($name, $res, $status, $code) = @_;
    is($res->{status}, $status, "$name: $status");
    is(decode($res)->{code}, $code, "$name: ... $code");
}

# a reload (or the user after a mail scanner) opens the link again while
# the job is live; once the passkey is made it is done
sub replayed {
    my ($name, $flow) = @_;
    my $res = get($flow->{url});
    ok($res->{status} == 200 || $res->{status} == 302,
       "$name: the link opens again while the job is live");
    both_headers("$name: the reload", $res);

    $res = ua()->post("$bi_url/__fake/jobs/$flow->{job}/complete",
        { headers => { 'Content-Type' => 'application/json' },
          content => '{}' });
    is($res->{status}, 200, "$name: the SDK binds a passkey");

    $res = get($flow->{url}, Accept => 'application/json');
    is($res->{status}, 410, "$name: then the link is done");
    like($res->{content}, qr/"code":"job_complete"/,
         "$name: ... job_complete");
    both_headers("$name: the replay", $res);
}

# no token, link or invokeAuthenticator route in any log of an instance
sub logs_clean {
    my ($name, $dir, @flows) = @_;

    for my $log (glob("$dir/*.log")) {
        my $text = slurp($log) // '';
        my @seen = grep { index($text, $_->{token}) >= 0
                          || index($text, $_->{url}) >= 0 } @flows;
        ok(!@seen && $text !~ /token=[^-&\s"]|invokeAuthenticator/
           && $text !~ /passkey-secret|demo_session=/,
           "$name: no token, link or session in " . ($log =~ s{.*/}{}r));
    }
}

sub fake_config {
    my ($json) = @_;
    my $res = ua()->post("$bi_url/__fake/config?tenant=$tenant",
        { headers => { 'Content-Type' => 'application/json' },
          content => $json });
    die "stand-in config: $res->{status}" unless $res->{success};
}

for my $name (map { s{^examples/}{}r } sort glob('examples/*.conf')) {
    my $prefix = render($name);
    ok(nginx($prefix, '-t', '-q'), "examples/$name passes nginx -t")
        or diag(`cat $prefix/logs/stderr`);
}

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

# a static page
{
    my $prefix = render('invoke-page.conf');
    my $name = 'examples/invoke-page.conf';
    ok(start($prefix), "$name starts");

    my $flow = email_flow($name);

    my $res = get($flow->{url});
    is($res->{status}, 200, "$name: /app/bind serves the page");
    is($res->{content}, slurp('examples/bind.html'),
       "$name: ... as it is");
    like($res->{headers}{'content-type'} // '', qr{^text/html},
         "$name: ... as HTML");
    both_headers("$name: the page", $res);

    replayed($name, $flow);

    $res = post_signup('{"username":"example-x","email":"x@example.com"}',
                       Origin => 'https://evil.example');
    problem("$name: a cross-site sign-up", $res, 403, 'forbidden_origin');

    $res = post_bind('{"username":"example-x"}');
    is($res->{status}, 404, "$name: no bind without a login");

    stop($prefix);

    logs_clean($name, "$prefix/logs", $flow);
}

# a redirect to a frontend route, the link in the fragment
{
    my $prefix = render('invoke-redirect.conf');
    my $name = 'examples/invoke-redirect.conf';
    ok(start($prefix), "$name starts");

    my $flow = email_flow($name);

    my $res = get($flow->{url});
    is($res->{status}, 302, "$name: /app/bind redirects");
    both_headers("$name: the redirect", $res);

    my ($to, $fragment) = ($res->{headers}{location} // '') =~ /^([^#]*)#(.*)$/;
    sdk_record_link(uri_unescape($fragment // ''));
    is($to, "$nginx_url/app/finish", "$name: ... to the frontend route");
    is(uri_unescape($fragment // ''), $flow->{url},
       "$name: ... with the link in the fragment");
    unlike($fragment // '', qr/[^A-Za-z0-9%._~-]/,
           "$name: ... percent-encoded");
    unlike($res->{content}, qr/token/, "$name: no link in the body");

    $res = get("$nginx_url/app/finish");
    is($res->{status}, 200, "$name: the frontend route answers");
    is($res->{content}, slurp('examples/finish.html'),
       "$name: ... with its page");

    replayed($name, $flow);

    stop($prefix);

    logs_clean($name, "$prefix/logs", $flow);
}

# the username and email come from the login service, not from the body
{
    my $prefix = render('behind-auth.conf');
    my $name = 'behind-auth';
    ok(start($prefix), 'examples/behind-auth.conf starts');

    my $res = post_bind('{}', Authorization => 'Bearer alice-session');
    is($res->{status}, 200, "$name: a signed-in user gets a job");
    like($res->{content}, qr/"credential_binding_link":"http/,
         "$name: ... and the link");

    $res = post_bind('{}');
    is($res->{status}, 401, "$name: no session, no job");

    $res = post_bind('{"username":"mallory"}',
                     Authorization => 'Bearer bob-session');
    problem("$name: bob naming mallory", $res, 403, 'identity_mismatch');

    $res = post_bind('{"email":"mallory@example.com"}',
                     Authorization => 'Bearer bob-session');
    problem("$name: bob naming mallory's address", $res, 403,
            'identity_mismatch');

    $res = post_bind('{}', Authorization => 'Bearer bob-session',
                     Origin => 'https://evil.example');
    problem("$name: a cross-site request", $res, 403, 'forbidden_origin');

    $res = post_bind('{"username":"bob"}',
                     Authorization => 'Bearer bob-session');
    is($res->{status}, 200, "$name: bob gets a job");

    stop($prefix);

    my $ids = identities();
    my %by_name = map { ($_->{traits}{username} // '') => $_ }
                  @{ decode({ content => $ids })->{identities} || [] };
    ok($by_name{alice}, "$name: alice was created");
    is($by_name{bob} && $by_name{bob}{traits}{primary_email_address},
       'bob@example.com', "$name: bob was created, with the login's address");
    unlike($ids, qr/mallory/, "$name: mallory was not");
}

# Beyond Identity's example frontends, unchanged: their exact requests,
# and the link where each one reads it
{
    my $prefix = render('frontends.conf');
    my $name = 'frontends';
    ok(start($prefix), 'examples/frontends.conf starts');

    my $sdk = 'http://localhost:8083';
    my $angular = 'http://localhost:4200';
    my @links;

    # the CORS headers of an answer: the page's own origin, or none
    my $cors = sub {
        my ($what, $res, $origin) = @_;
        is($res->{headers}{'access-control-allow-origin'}, $origin,
           "$name: $what: Access-Control-Allow-Origin "
           . ($origin // 'absent'));
        is($res->{headers}{vary}, 'Origin', "$name: $what: Vary: Origin");
    };

    # what a browser asks before a cross-origin JSON POST
    my $preflight = sub {
        my ($path, $origin) = @_;
        return ua()->request('OPTIONS', "$nginx_url$path",
            { headers => { Origin => $origin,
                           'Access-Control-Request-Method' => 'POST',
                           'Access-Control-Request-Headers'
                               => 'content-type' } });
    };

    my $link_of = sub {
        my ($link) = @_;
        push @links, { url => $link // 'no link',
                       token => ($link // '') =~ /token=([^&]+)/
                                ? $1 : 'no token' };
        return $link;
    };

    # --- the JS SDK example (bind-passkey.tsx) ---------------------------

    my $res = $preflight->('/credential-binding-link', $sdk);
    is($res->{status}, 204, "$name: the SDK page's preflight: 204");
    $cors->('the SDK preflight', $res, $sdk);
    is($res->{headers}{'access-control-allow-methods'}, 'POST',
       "$name: ... Access-Control-Allow-Methods: POST");
    like($res->{headers}{'access-control-allow-headers'} // '',
         qr/^Content-Type, Idempotency-Key$/,
         "$name: ... Access-Control-Allow-Headers");
    is($res->{headers}{'access-control-max-age'}, 3600,
       "$name: ... Access-Control-Max-Age");
    is($res->{content} // '', '', "$name: ... and no body");

    $res = post_json('/credential-binding-link',
                     '{"username":"frontends-web","authenticator_type":"web",'
                     . '"delivery_method":"return"}',
                     Origin => $sdk, Accept => '*/*');
    is($res->{status}, 200, "$name: the SDK page's sign-up: 200");
    my $got = decode($res);
    my $want = qr{^http://127\.0\.0\.1:\d+/v1/tenants/\Q$tenant\E/}
               . qr{realms/demo/identities/\w+/credential-binding-jobs/\w+}
               . qr{:invokeAuthenticator\?token=[\w-]{20,}$};
    like($link_of->($got->{credential_binding_link}), qr/$want/,
         "$name: ... credential_binding_link, where the page reads it");
    $cors->('the SDK sign-up', $res, $sdk);
    both_headers("$name: the SDK sign-up", $res);

    # --- the mobile SDK examples (Retrofit, URLSession, Dart http) -------

    $res = post_json('/credential-binding-link',
                     '{"username":"frontends-app","authenticator_type":'
                     . '"native","delivery_method":"return"}',
                     'Content-Type' => 'application/json; charset=UTF-8');
    is($res->{status}, 200, "$name: an app's sign-up: 200");
    $got = decode($res);
    my $job = $got->{credential_binding_job} || {};
    like($job->{id} // '', qr/^[0-9a-f]{16}$/,
         "$name: ... Beyond Identity's envelope: the job's id");
    is_deeply([sort keys %$job],
              [sort qw(id realm_id tenant_id identity_id delivery_method
                       state authenticator_config_id expire_time
                       create_time update_time)],
              "$name: ... the job's members, as the apps decode them");
    is("$job->{tenant_id} $job->{realm_id} $job->{delivery_method} "
       . "$job->{state} $job->{authenticator_config_id}",
       "$tenant demo RETURN LINK_SENT 67bb0acf12e5c899",
       "$name: ... as the API gave them");
    $want = qr{/identities/\Q$job->{identity_id}\E/}
            . qr{credential-binding-jobs/\Q$job->{id}\E:invokeAuthenticator}
            . qr{\?token=[\w-]{20,}$};
    like($link_of->($got->{credential_binding_link}), qr/$want/,
         "$name: ... and its credential_binding_link");
    ok(!exists $res->{headers}{'access-control-allow-origin'},
       "$name: ... no Access-Control-Allow-Origin without an Origin");

    # --- passkey-developer-workshop: same origin -------------------------

    $res = post_json('/api/beyondidentity/get-credential-binding-link',
                     '{"username":"frontends-workshop"}',
                     Origin => $nginx_url);
    is($res->{status}, 200, "$name: the workshop's sign-up: 200");
    like($link_of->(decode($res)->{credential_binding_link}),
         qr{:invokeAuthenticator\?token=},
         "$name: ... credential_binding_link, where the page reads it");
    like($res->{content}, qr/^\{"job_id":"\w+","identity_id":"\w+",/,
         "$name: ... in the module's own answer");
    ok(!exists $res->{headers}{'access-control-allow-origin'},
       "$name: ... and no CORS headers: none are needed");

    $res = post_json('/api/beyondidentity/get-credential-binding-link',
                     '{"username":"frontends-elsewhere"}',
                     Origin => 'https://evil.example');
    problem("$name: the workshop's endpoint from another site", $res, 403,
            'forbidden_origin');

    for my $path ('/api/beyondidentity/recover-credential-binding-link',
                  '/api/beyondidentity/recover-credential-binding-link/',
                  '/api/beyondidentity/other')
    {
        $res = post_json($path, '{"username":"frontends-workshop"}',
                         Origin => $nginx_url);
        is($res->{status}, 404, "$name: $path: 404, not the app's route");
    }

    # --- getting-started-angular ------------------------------------------

    $res = $preflight->('/users/signup', $angular);
    is($res->{status}, 204, "$name: the Angular page's preflight: 204");
    $cors->('the Angular preflight', $res, $angular);
    like($res->{headers}{'access-control-allow-headers'} // '',
         qr/^Content-Type, Idempotency-Key$/,
         "$name: ... Access-Control-Allow-Headers");

    $res = post_json('/users/signup', '{"username":"frontends-angular"}',
                     Origin => $angular,
                     Accept => 'application/json, text/plain, */*');
    is($res->{status}, 200, "$name: the Angular page's sign-up: 200");
    $got = decode($res);
    like($link_of->($got->{credentialBindingLink}),
         qr{:invokeAuthenticator\?token=[\w-]{20,}$},
         "$name: ... credentialBindingLink, where the page reads it");
    is($got->{username}, 'frontends-angular', "$name: ... and username");
    ok(!exists $got->{credential_binding_link},
       "$name: ... in camelCase only");
    $cors->('the Angular sign-up', $res, $angular);

    # --- problems carry CORS headers; foreign pages get none ---------------

    $res = post_json('/users/signup', '{"username":""}', Origin => $angular);
    problem("$name: an empty username", $res, 400, 'missing_username');
    $cors->('the 400', $res, $angular);
    like($res->{headers}{'content-type'}, qr{^application/problem\+json},
         "$name: ... problem details the page can read");

    $res = post_json('/credential-binding-link',
                     '{"username":"frontends-mail",'
                     . '"delivery_method":"email"}', Origin => $sdk);
    problem("$name: the SDK page asking for EMAIL", $res, 400,
            'invalid_delivery_method');
    $cors->('that 400', $res, $sdk);

    for my $case (['https://evil.example', '/users/signup'],
                  [$angular, '/credential-binding-link'],
                  [$sdk, '/users/signup'])
    {
        my ($origin, $path) = @$case;

        $res = $preflight->($path, $origin);
        is($res->{status}, 204, "$name: $origin asks about $path");
        $cors->("$origin on $path", $res, undef);

        $res = post_json($path, '{"username":"frontends-foreign"}',
                         Origin => $origin);
        problem("$name: $origin posts to $path", $res, 403,
                'forbidden_origin');
        $cors->("the 403 to $origin", $res, undef);
    }

    # --- a taken username never gets a link ---------------------------------

    $res = post_json('/credential-binding-link',
                     '{"username":"frontends-app","authenticator_type":"web",'
                     . '"delivery_method":"return"}', Origin => $sdk);
    is($res->{status}, 202, "$name: the SDK page names a taken username");
    is($res->{content}, $accepted, "$name: ... accepted, and no link");
    $cors->('the 202', $res, $sdk);

    $res = post_json('/users/signup', '{"username":"FRONTENDS-WORKSHOP"}',
                     Origin => $angular);
    is($res->{status}, 202,
       "$name: the Angular page names a taken username, in capitals");
    is($res->{content}, $accepted, "$name: ... accepted, and no link");

    unlike(identities(), qr/frontends-(?:foreign|elsewhere|mail)/,
           "$name: the refused requests created nothing");

    stop($prefix);

    logs_clean($name, "$prefix/logs", @links);
}

stop_app();

__DATA__

=== TEST 1: the quick start's "add a passkey to my account": signed in
--- http_config
    map $cookie_demo_session $test_user {
        alice-session  quickstart-alice;
        default        "";
    }
--- config
    location = /passkey/bind {
        auth_request      /_auth;
        auth_request_set  $passkey_user  $upstream_http_x_user;

        passkey_bind_mode        authenticated;
        passkey_username         $passkey_user;
        passkey_delivery_method  RETURN EMAIL;
        passkey_limit            $passkey_username  rate=10/m;

        passkey_bind;

        add_header  X-Passkey-Job  $passkey_job_id always;
    }

    location = /_auth {
        internal;
        proxy_pass  http://127.0.0.1:$TEST_NGINX_SERVER_PORT/session;
        proxy_pass_request_body  off;
        proxy_set_header  Content-Length  "";
    }

    location = /session {
        if ($test_user = "") {
            return 401;
        }
        add_header  X-User  $test_user;
        return 204;
    }
--- more_headers
Content-Type: application/json
Cookie: demo_session=alice-session
--- request
POST /passkey/bind
{}
--- error_code: 200
--- response_headers_like
X-Passkey-Job: ^[0-9a-f]{16}$
RateLimit-Limit: ^10$
--- response_body_like: "RETURN","credential_binding_link":"http



=== TEST 2: the quick start's "add a passkey to my account": no session
--- http_config
    map $cookie_demo_session $test_user {
        alice-session  quickstart-alice;
        default        "";
    }
--- config
    location = /passkey/bind {
        auth_request      /_auth;
        auth_request_set  $passkey_user  $upstream_http_x_user;

        passkey_bind_mode  authenticated;
        passkey_username   $passkey_user;

        passkey_bind;
    }

    location = /_auth {
        internal;
        proxy_pass  http://127.0.0.1:$TEST_NGINX_SERVER_PORT/session;
        proxy_pass_request_body  off;
        proxy_set_header  Content-Length  "";
    }

    location = /session {
        if ($test_user = "") {
            return 401;
        }
        add_header  X-User  $test_user;
        return 204;
    }
--- more_headers
Content-Type: application/json
Cookie: demo_session=forged
--- request
POST /passkey/bind
{"username":"quickstart-alice"}
--- error_code: 401
--- response_body_unlike: job_id



=== TEST 3: the quick start's "add a passkey to my account": someone else
--- http_config
    map $cookie_demo_session $test_user {
        alice-session  quickstart-alice;
        default        "";
    }
--- config
    location = /passkey/bind {
        auth_request      /_auth;
        auth_request_set  $passkey_user  $upstream_http_x_user;

        passkey_bind_mode  authenticated;
        passkey_username   $passkey_user;

        passkey_bind;
    }

    location = /_auth {
        internal;
        proxy_pass  http://127.0.0.1:$TEST_NGINX_SERVER_PORT/session;
        proxy_pass_request_body  off;
        proxy_set_header  Content-Length  "";
    }

    location = /session {
        if ($test_user = "") {
            return 401;
        }
        add_header  X-User  $test_user;
        return 204;
    }
--- more_headers
Content-Type: application/json
Cookie: demo_session=alice-session
--- request
POST /passkey/bind
{"username":"quickstart-bob"}
--- error_code: 403
--- response_body_like: "code":"identity_mismatch"
--- error_log
identity_mismatch



=== TEST 4: the quick start's sign-up: 202 and nothing else
--- config
    location = /passkey/signup {
        passkey_bind_mode        signup;
        passkey_delivery_method  EMAIL;
        passkey_signup_existing  email;
        passkey_limit            $binary_remote_addr  rate=10/m burst=20;
        passkey_limit            $passkey_username    rate=5/h;
        passkey_limit            $passkey_email       rate=3/h;
        passkey_email_cooldown   5m;

        passkey_bind;
    }
--- more_headers
Content-Type: application/json
--- request
POST /passkey/signup
{"username":"quickstart-carol","email":"carol@example.com"}
--- error_code: 202
--- response_body
{"state":"accepted","delivery_method":"EMAIL"}



=== TEST 5: the quick start's sign-up: not from another site's page
--- config
    location = /passkey/signup {
        passkey_bind_mode        signup;
        passkey_delivery_method  EMAIL;
        passkey_allowed_origins  http://127.0.0.1:8080 http://localhost:8080;

        passkey_bind;
    }
--- more_headers
Content-Type: application/json
Origin: https://evil.example
--- request
POST /passkey/signup
{"username":"quickstart-carol","email":"carol@example.com"}
--- error_code: 403
--- response_body_like: "code":"forbidden_origin"
--- error_log
cross-site request refused
