# Helpers of the tests of the configurations in examples/
# (t/070-examples-check.t to t/075-examples-frontends.t), loaded after
# "use t::Passkey" and "use Test::Nginx::Socket": each example rendered
# as a user would edit it (module path, test ports, the file's own
# tenant) and started as its own nginx on TEST_NGINX_SERVER_PORT+100
# (and +101), the example app util/demo-app on +102, requests to them,
# the demo login, emailed links followed through the stand-in's outbox,
# and the check that no log holds a token, a link or a session.  What a
# file started is stopped however it ends.

package t::Examples;

use strict;
use warnings;

# t::Passkey's functions, without its import: that sets up the blocks of
# the test file, which has done it
use t::Passkey ();
BEGIN {
    t::Passkey->export(__PACKAGE__,
                       qw(block_tenant sdk_record_link sdk_links_in));
}
use Test::More;
use HTTP::Tiny;
use JSON::PP ();
use File::Path qw(make_path remove_tree);
use Time::HiRes qw(sleep);
use POSIX ();

use base 'Exporter';

our @EXPORT = qw($nginx_url $bi_url $tenant $base $accepted
                 render slurp nginx start stop start_app stop_app
                 ua post_json post_bind post_signup get decode
                 identities outbox login follow_mail email_flow
                 both_headers problem replayed logs_clean fake_config);

my $nginx = $ENV{TEST_NGINX_BINARY} || 'nginx';
my ($module) = split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} || '');
our $base = ($ENV{TEST_NGINX_SERVROOT} || 't/servroot') . '-examples';
my $port = ($ENV{TEST_NGINX_SERVER_PORT} || 1984) + 100;
my $app_port = $port + 2;
our $tenant = block_tenant('examples');
our $nginx_url = "http://127.0.0.1:$port";
our $bi_url = "http://127.0.0.1:$ENV{TEST_NGINX_BI_PORT}";
my $auth_url = "http://127.0.0.1:$ENV{TEST_NGINX_BI_AUTH_PORT}";
my $auth_arg = "http%3A%2F%2F127.0.0.1%3A$ENV{TEST_NGINX_BI_AUTH_PORT}";
my $users = 0;

# the sign-up answer, whatever happened
our $accepted = qq({"state":"accepted","delivery_method":"EMAIL"}\n);

# the nginx instances and the app that the test file started: stopped
# however it ends
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

    # the password redis-managed.conf reads
    open my $pw, '>', "$prefix/conf/redis_password" or die;
    print $pw "example-redis-password\n";
    close $pw;
    chmod 0600, "$prefix/conf/redis_password";

    # the pages and the SDK they load, where "make demo" puts them
    system("cp examples/*.html $prefix/html/") == 0
        or die "cannot copy the example pages";
    system("cp util/sdk/node_modules/\@beyondidentity/bi-sdk-js/dist/"
           . "bi-embedded.js $prefix/html/bi-sdk.js") == 0
        or die "cannot copy the SDK (util/sdk-deps installs it)";

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

1;
