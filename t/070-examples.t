# The configurations in examples/ work as shipped: each passes "nginx -t",
# and each is started (on test ports, against the stand-in, Redis and the
# example app util/demo-app) and answers the way its comments say: a bind
# with either delivery method, and an emailed link followed through the
# stand-in's outbox to /app/bind, handed over in each of the three styles.
# None of their logs may hold a token or a binding link.

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
my $users = 0;

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
    $conf =~ s/127\.0\.0\.1:16379/127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT}/g;
    $conf =~ s/127\.0\.0\.1:(8080|8090)\b/127.0.0.1:$port/g;
    $conf =~ s/127\.0\.0\.1:8091\b/127.0.0.1:@{[$port + 1]}/g;
    $conf =~ s/127\.0\.0\.1:8081\b/127.0.0.1:$app_port/g;
    $conf =~ s/(passkey_tenant_id\s+)demo;/$1$tenant;/;
    $conf =~ s/(passkey_redis_prefix\s+)\S+;/$1test:$tenant:;/;

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

sub post_bind {
    my ($json, %headers) = @_;
    return ua()->post("$nginx_url/passkey/bind",
        { headers => { 'Content-Type' => 'application/json', %headers },
          content => $json });
}

sub get {
    my ($url, %headers) = @_;
    return ua()->get($url, { headers => \%headers });
}

sub identities {
    my $res = get("$bi_url/__fake/identities?tenant=$tenant&realm=demo");
    return $res->{content};
}

# The EMAIL flow as the README tells it: a bind with EMAIL, the mail in
# the stand-in's outbox, its link followed to a 302 to /app/bind?....
sub email_flow {
    my ($name) = @_;
    my $user = "example-email-" . ++$users;

    my $res = post_bind(qq({"username":"$user","email":"$user\@example.com",)
                        . qq("delivery_method":"EMAIL"}));
    is($res->{status}, 200, "$name: an EMAIL bind answers 200");
    like($res->{content}, qr/"delivery_method":"EMAIL"/,
         "$name: the answer says EMAIL");
    unlike($res->{content}, qr/credential_binding_link|token=/,
           "$name: the answer has no link");

    my ($job) = $res->{content} =~ /"job_id":"(\w+)"/;
    my ($identity) = $res->{content} =~ /"identity_id":"(\w+)"/;

    $res = get("$bi_url/__fake/outbox?tenant=$tenant");
    my ($mail) = grep { $_->{job_id} eq ($job // '') }
                 @{ JSON::PP::decode_json($res->{content})->{messages} };
    ok($mail, "$name: Beyond Identity mailed the link")
        or return {};

    $res = get($mail->{link});
    is($res->{status}, 302, "$name: the mailed link answers 302");

    my $url = $res->{headers}{location} // '';
    my $want = qr{^\Q$nginx_url\E/app/bind\?api_base_url=[^&]+}
                . qr{&tenant_id=\Q$tenant\E&realm_id=demo}
                . qr{&identity_id=\Q$identity\E&job_id=\Q$job\E}
                . qr{&token=[\w-]{20,}$};
    like($url, qr/$want/,
         "$name: ... to /app/bind with the six arguments");

    my ($token) = $url =~ /[?&]token=([^&]+)/;

    return { job => $job, identity => $identity, url => $url,
             token => $token // 'no token', link => $mail->{link} };
}

sub both_headers {
    my ($name, $res) = @_;
    is($res->{headers}{'cache-control'}, 'no-store',
       "$name: Cache-Control: no-store");
    is($res->{headers}{'referrer-policy'}, 'no-referrer',
       "$name: Referrer-Policy: no-referrer");
}

sub replayed {
    my ($name, $flow) = @_;
    my $res = get($flow->{url}, Accept => 'application/json');
    is($res->{status}, 409, "$name: the link works once");
    like($res->{content}, qr/"code":"link_already_used"/,
         "$name: ... then link_already_used");
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
           && $text !~ /passkey-secret/,
           "$name: no token or link in " . ($log =~ s{.*/}{}r));
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

# the quick start: both delivery methods, and the app behind proxy_pass
{
    my $prefix = render('nginx.conf');
    my $name = 'examples/nginx.conf';
    ok(start($prefix), "$name starts");

    my $res = post_bind('{"username":"example-alice","email":"a@example.com"}');
    is($res->{status}, 200, "$name: a bind answers 200");
    my ($job) = $res->{content} =~ /"job_id":"([0-9a-f]+)"/;
    ok($job, "$name: the answer names the job");
    like($res->{content},
         qr/"delivery_method":"RETURN".*"credential_binding_link":"http/,
         "$name: RETURN by default, with the link");
    is($res->{headers}{'x-passkey-job'}, $job,
       "$name: X-Passkey-Job names it too");

    my $flow = email_flow($name);

    $res = get($flow->{url}, Accept => 'application/json');
    is($res->{status}, 200, "$name: /app/bind reaches the app");
    both_headers("$name: /app/bind", $res);

    my $got = eval { JSON::PP::decode_json($res->{content}) } || {};
    is($got->{binding_link}, $flow->{url},
       "$name: the app got the link byte for byte");
    is($got->{job_id}, $flow->{job}, "$name: ... and the job id");
    is($got->{identity_id}, $flow->{identity},
       "$name: ... and the identity id");

    replayed($name, $flow);

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

    # the job endpoints
    $res = get("$nginx_url/passkey/jobs/$flow->{job}");
    is($res->{status}, 200, "$name: the job's status");
    like($res->{content}, qr/"state":"LINK_OPENED"/,
         "$name: ... the link was opened");
    unlike($res->{content}, qr/token=|invokeAuthenticator/,
           "$name: ... and no link in it");

    $res = ua()->post("$nginx_url/passkey/jobs/$second->{job}:revoke");
    is($res->{status}, 200, "$name: a job is revoked");
    like($res->{content}, qr/"state":"REVOKED"/, "$name: ... REVOKED");

    stop($prefix);

    my $log = slurp("$prefix/logs/access.log");
    my $want = qr{"POST /passkey/bind HTTP/1\.1" 200 .* job=\Q$job\E }
               . qr{method=RETURN};
    like($log, qr/$want/,
         "$name: the access log has the job id");
    $want = qr{"GET /app/bind\?api_base_url=\S+&job_id=\Q$flow->{job}\E}
            . qr{&token=- HTTP/1\.1" 200 };
    like($log, qr/$want/,
         "$name: the access log shows /app/bind with token=-");

    logs_clean($name, "$prefix/logs", $flow, $second);
    logs_clean("util/demo-app", "$base/app", $flow, $second);
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
    ok(start($prefix), 'examples/behind-auth.conf starts');

    my $res = post_bind('{}', Authorization => 'Bearer alice-session');
    is($res->{status}, 200, 'behind-auth: a signed-in user gets a job');

    $res = post_bind('{}');
    is($res->{status}, 401, 'behind-auth: no session, no job');

    $res = post_bind('{"username":"mallory"}',
                Authorization => 'Bearer bob-session');
    is($res->{status}, 200, 'behind-auth: bob gets a job');

    stop($prefix);

    my $ids = identities();
    like($ids, qr/"username":"alice"/, 'behind-auth: alice was created');
    like($ids, qr/"username":"bob"/, 'behind-auth: bob was created');
    unlike($ids, qr/mallory/, 'behind-auth: a username in the body is ignored');
}

stop_app();

__DATA__

=== TEST 1: the quick-start location, as in examples/nginx.conf
--- config
    location = /passkey/bind {
        passkey_bind;
        add_header  X-Passkey-Job  $passkey_job_id always;
    }
--- more_headers
Content-Type: application/json
--- request
POST /passkey/bind
{"username":"quickstart"}
--- error_code: 200
--- response_headers_like
X-Passkey-Job: ^[0-9a-f]{16}$
