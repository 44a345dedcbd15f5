# Redis: jobs are not created when Redis is unavailable, the module
# reconnects by itself when Redis comes back, commands time out when Redis
# hangs, and AUTH, SELECT and unix sockets work.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep);

our $Port = $ENV{TEST_NGINX_REDIS_PORT} + 17;
our $Dir = "/tmp/passkey-redis-test.$$";
our $Socket = "$Dir/redis.sock";
our $Password = "redis-test-password";

$ENV{TEST_NGINX_PRIVATE_REDIS_PORT} = $Port;
$ENV{TEST_NGINX_PRIVATE_REDIS_SOCKET} = $Socket;
$ENV{TEST_NGINX_REDIS_PASSWORD_FILE} = "$Dir/password";
$ENV{TEST_NGINX_REDIS_WRONG_PASSWORD_FILE} = "$Dir/wrong";

sub private_redis_start {
    mkdir $Dir;
    system("redis-server --port $Port --bind 127.0.0.1 --daemonize yes"
           . " --save '' --appendonly no --dir $Dir"
           . " --pidfile $Dir/redis.pid --logfile $Dir/redis.log"
           . " --unixsocket $Socket --unixsocketperm 700"
           . " --requirepass $Password") == 0
        or die "cannot start redis-server";

    for (1 .. 50) {
        return if -S $Socket
                  && `redis-cli -p $Port -a $Password --no-auth-warning ping`
                     =~ /PONG/;
        sleep 0.1;
    }

    die "redis-server did not start";
}

sub private_redis_stop {
    system("redis-cli -p $Port -a $Password --no-auth-warning"
           . " shutdown nosave >/dev/null 2>&1");
    for (1 .. 50) {
        last unless -e "$Dir/redis.pid";
        sleep 0.1;
    }
}

sub private_redis_pid {
    open my $fh, '<', "$Dir/redis.pid" or return;
    my $pid = <$fh>;
    chomp $pid;
    return $pid;
}

sub private_redis_cmd {
    my ($db, @args) = @_;
    my $cmd = join ' ', map { "'$_'" } @args;
    my $out = `redis-cli -p $Port -a $Password --no-auth-warning -n $db $cmd`;
    chomp $out;
    return $out;
}

mkdir $Dir;
open my $fh, '>', "$Dir/password" or die;
print $fh "$Password\n";
close $fh;
open $fh, '>', "$Dir/wrong" or die;
print $fh "not-the-password\n";
close $fh;
chmod 0600, "$Dir/password", "$Dir/wrong";

private_redis_start();

END {
    private_redis_stop();
    unlink "$Dir/password", "$Dir/wrong";
    rmdir $Dir;
}

# redis goes away and comes back between the requests of TEST 2
add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;

    return unless $block->name =~ /comes back/;

    if ($req_idx == 0) {
        private_redis_stop();

    } elsif ($req_idx == 1) {
        private_redis_start();
        sleep 1.2;      # longer than the module's reconnect backoff
    }
});

# a hung redis is released after the request of TEST 3
add_response_body_check(sub {
    my ($block) = @_;

    return unless $block->name =~ /hangs/;

    my $pid = private_redis_pid();
    kill 'CONT', $pid if $pid;
});

repeat_each(1);
no_shuffle();

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('more_headers', 'Content-Type: application/json')
        unless defined $block->more_headers;
});

sub bind_req {
    my ($user) = @_;
    return "POST /passkey/bind\n{\"username\":\"$user\"}";
}

run_tests();

# what TEST 5 and TEST 6 stored, looked up in the private redis
like(private_redis_cmd(3, 'KEYS', 'db3test:job:*'), qr/^db3test:job:[0-9a-f]{16}$/,
     "TEST 5 stored its job in database 3");
is(private_redis_cmd(0, 'KEYS', 'db3test:job:*'), '',
   "TEST 5 stored nothing in database 0");
like(private_redis_cmd(0, 'KEYS', 'unixtest:job:*'), qr/^unixtest:job:[0-9a-f]{16}$/,
     "TEST 6 stored its job over the unix socket");

__DATA__

=== TEST 1: nothing listens at the redis address: 503, and no API call
--- config
    location = /passkey/bind {
        passkey_redis 127.0.0.1:1;
        passkey_bind;
    }
--- request eval
[main::bind_req("r1"), "GET /fake/stats"]
--- error_code eval
[503, 200]
--- response_body_like eval
[qr/^\{"type":"urn:ngx-passkey:problem:redis_unavailable","title":"Service Unavailable","status":503,"detail":"job storage is unavailable","code":"redis_unavailable"/,
 qr/"create_identity":0,"create_job":0,.*"list_identities":0,/]



=== TEST 2: redis goes away and comes back
--- config
    location = /passkey/bind {
        passkey_redis 127.0.0.1:$TEST_NGINX_PRIVATE_REDIS_PORT
                      password_file=$TEST_NGINX_REDIS_PASSWORD_FILE;
        passkey_bind;
    }
--- request eval
[main::bind_req("r2a"), main::bind_req("r2b"), main::bind_req("r2c")]
--- error_code eval
[200, 503, 200]
--- response_body_like eval
[qr/"job_id"/, qr/"code":"redis_unavailable"/, qr/"job_id"/]



=== TEST 3: redis hangs: the command times out
--- init
my $pid = main::private_redis_pid();
kill 'STOP', $pid;
--- config
    location = /passkey/bind {
        passkey_redis 127.0.0.1:$TEST_NGINX_PRIVATE_REDIS_PORT
                      password_file=$TEST_NGINX_REDIS_PASSWORD_FILE;
        passkey_redis_timeout 300ms;
        passkey_bind;
    }
--- request eval
main::bind_req("r3")
--- error_code: 503
--- response_body_like: "code":"redis_unavailable"
--- error_log eval
qr/passkey: redis "127\.0\.0\.1:\d+" timed out/



=== TEST 4: a wrong redis password
--- config
    location = /passkey/bind {
        passkey_redis 127.0.0.1:$TEST_NGINX_PRIVATE_REDIS_PORT
                      password_file=$TEST_NGINX_REDIS_WRONG_PASSWORD_FILE;
        passkey_bind;
    }
--- request eval
main::bind_req("r4")
--- error_code: 503
--- response_body_like: "code":"redis_unavailable"
--- no_error_log
not-the-password
redis-test-password



=== TEST 5: AUTH and SELECT: the job lands in the configured database
--- config
    location = /passkey/bind {
        passkey_redis 127.0.0.1:$TEST_NGINX_PRIVATE_REDIS_PORT database=3
                      password_file=$TEST_NGINX_REDIS_PASSWORD_FILE;
        passkey_redis_prefix "db3test:";
        passkey_bind;
        add_header X-Job $passkey_job_id always;
    }
--- request eval
main::bind_req("r5")
--- error_code: 200
--- response_body_like: "job_id"



=== TEST 6: a unix socket
--- config
    location = /passkey/bind {
        passkey_redis unix:$TEST_NGINX_PRIVATE_REDIS_SOCKET
                      password_file=$TEST_NGINX_REDIS_PASSWORD_FILE;
        passkey_redis_prefix "unixtest:";
        passkey_bind;
    }
--- request eval
main::bind_req("r6")
--- error_code: 200
--- response_body_like: "job_id"
