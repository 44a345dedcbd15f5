# The configurations in examples/ work as shipped: each passes "nginx -t",
# and each is started (on test ports, against the stand-in and Redis) and
# answers a bind the way its comments say.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use HTTP::Tiny;
use File::Path qw(make_path remove_tree);
use Time::HiRes qw(sleep);

repeat_each(1);
no_shuffle();
run_tests();

my $nginx = $ENV{TEST_NGINX_BINARY} || 'nginx';
my ($module) = split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} || '');
my $base = ($ENV{TEST_NGINX_SERVROOT} || 't/servroot') . '-examples';
my $port = ($ENV{TEST_NGINX_SERVER_PORT} || 1984) + 100;
my $tenant = block_tenant('examples');

# the example as a user would edit it: module path, ports, tenant
# nginx instances this file started, stopped however it ends
my %running;

END { stop($_) for keys %running }

sub render {
    my ($name) = @_;

    my $prefix = "$base/$name";
    remove_tree($prefix);
    make_path("$prefix/conf", "$prefix/logs", "$prefix/tmp");

    open my $in, '<', "examples/$name" or die "examples/$name: $!";
    my $conf = do { local $/; <$in> };
    close $in;

    $conf =~ s/^load_module .*;$/load_module $module;/m;
    $conf =~ s/^worker_processes .*;$/worker_processes 1;/m;
    $conf =~ s/127\.0\.0\.1:18999/127.0.0.1:$ENV{TEST_NGINX_BI_PORT}/g;
    $conf =~ s/127\.0\.0\.1:16379/127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT}/g;
    $conf =~ s/127\.0\.0\.1:(8080|8090)\b/127.0.0.1:$port/g;
    $conf =~ s/127\.0\.0\.1:8091\b/127.0.0.1:@{[$port + 1]}/g;
    $conf =~ s/(passkey_tenant_id\s+)demo;/$1$tenant;/;
    $conf =~ s/(passkey_redis_prefix\s+)\S+;/$1test:$tenant:;/;

    open my $out, '>', "$prefix/conf/nginx.conf" or die;
    print $out $conf;
    close $out;

    system("cp $ENV{TEST_NGINX_SECRETS}/client_secret $prefix/conf/") == 0
        or die "cannot copy the client secret";
    chmod 0600, "$prefix/conf/client_secret";

    return $prefix;
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
                        ->get("http://127.0.0.1:$port/")->{status} != 599;
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

sub post_bind {
    my ($json, %headers) = @_;
    return HTTP::Tiny->new(timeout => 10)->post(
        "http://127.0.0.1:$port/passkey/bind",
        { headers => { 'Content-Type' => 'application/json', %headers },
          content => $json });
}

sub identities {
    my $res = HTTP::Tiny->new(timeout => 5)->get(
        "http://127.0.0.1:$ENV{TEST_NGINX_BI_PORT}/__fake/identities"
        . "?tenant=$tenant&realm=demo");
    return $res->{content};
}

for my $name ('nginx.conf', 'behind-auth.conf') {
    my $prefix = render($name);
    ok(nginx($prefix, '-t', '-q'), "examples/$name passes nginx -t")
        or diag(`cat $prefix/logs/stderr`);
}

# the quick start
{
    my $prefix = render('nginx.conf');
    ok(start($prefix), 'examples/nginx.conf starts');

    my $res = post_bind('{"username":"example-alice","email":"a@example.com"}');
    is($res->{status}, 200, 'examples/nginx.conf: a bind answers 200');
    my ($job) = $res->{content} =~ /"job_id":"([0-9a-f]+)"/;
    ok($job, 'examples/nginx.conf: the answer names the job');
    is($res->{headers}{'x-passkey-job'}, $job,
       'examples/nginx.conf: X-Passkey-Job names it too');

    stop($prefix);

    my $log = `cat $prefix/logs/access.log`;
    like($log, qr/"POST \/passkey\/bind HTTP\/1\.1" 200 .* job=\Q$job\E/,
         'examples/nginx.conf: the access log has the job id');
    unlike($log . `cat $prefix/logs/error.log`,
           qr/token=|passkey-secret|invokeAuthenticator/,
           'examples/nginx.conf: no secret in its logs');
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
