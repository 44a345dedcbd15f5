# passkey_redis as managed Redis services are reached: rediss:// over TLS
# (nginx's SSL layer: the server's certificate checked against a private
# CA and the name, a client certificate where the server asks for one),
# redis:// URLs with an ACL user, and the forms nginx -t refuses.
#
# The file starts two TLS-only redis-servers of its own (Debian's is
# built with TLS): one that takes any client, one that wants a client
# certificate signed by the test CA.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use File::Temp qw(tempdir);
use POSIX ();
use Time::HiRes qw(sleep);

repeat_each(1);
no_shuffle();

our $Tls = $ENV{TEST_NGINX_TLS_DIR};
our $Dir = tempdir('passkey-redis-tls.XXXXXX', TMPDIR => 1, CLEANUP => 1);
our $Port = ($ENV{TEST_NGINX_SERVER_PORT} || 1984) + 160;
our @Pids;

$ENV{TEST_NGINX_REDIS_TLS_PORT} = $Port;
$ENV{TEST_NGINX_REDIS_MTLS_PORT} = $Port + 1;
$ENV{TEST_NGINX_REDIS_TLS_DIR} = $Dir;

# a client certificate the test CA signed, and the ACL user's password
sub setup_files {
    my $log = "$Dir/openssl.log";
    system("cd $Dir && openssl req -newkey rsa:2048 -nodes"
           . " -subj '/CN=passkey client' -keyout client.key -out client.csr"
           . " >$log 2>&1 && openssl x509 -req -in client.csr"
           . " -CA $Tls/ca.crt -CAkey $Tls/ca.key -CAcreateserial -days 2"
           . " -out client.crt >>$log 2>&1") == 0
        or die "openssl: " . `cat $log`;

    for (['acl_password', 'acl-pw'], ['wrong_password', 'not-the-pw']) {
        open my $fh, '>', "$Dir/$_->[0]" or die $!;
        print $fh "$_->[1]\n";
        close $fh;
        chmod 0600, "$Dir/$_->[0]";
    }
}

# no shell: ACL rules such as "&*" and "~*" go through as they are
sub redis_cli {
    my ($port, @args) = @_;

    open my $fh, '-|', 'redis-cli', '--tls', '--cacert', "$Tls/ca.crt",
         '--cert', "$Dir/client.crt", '--key', "$Dir/client.key",
         '-p', $port, @args
        or die "redis-cli: $!";
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    chomp $out;

    return $out;
}

sub start_redis {
    my ($port, $clients) = @_;

    my $pid = fork;
    die "fork: $!" unless defined $pid;

    if ($pid == 0) {
        open STDOUT, '>', "$Dir/redis-$port.log";
        open STDERR, '>&', \*STDOUT;
        { exec 'redis-server', '--port', '0', '--tls-port', $port,
               '--bind', '127.0.0.1', '--tls-cert-file', "$Tls/server.crt",
               '--tls-key-file', "$Tls/server.key",
               '--tls-ca-cert-file', "$Tls/ca.crt",
               '--tls-auth-clients', $clients, '--save', '', '--appendonly',
               'no', '--dir', $Dir; }
        POSIX::_exit(1);
    }

    push @Pids, $pid;

    for (1 .. 50) {
        return if redis_cli($port, 'ping') eq 'PONG';
        sleep 0.1;
    }

    die "redis-server on $port did not start: "
        . `cat $Dir/redis-$port.log`;
}

END {
    local $?;
    kill 'TERM', @Pids if @Pids;
    waitpid $_, 0 for @Pids;
}

setup_files();
start_redis($Port, 'optional');
start_redis($Port + 1, 'yes');

redis_cli($Port, 'ACL', 'SETUSER', 'passkey', 'on', '>acl-pw', '~*', '&*',
          '+@all');

# the job of the block's bind is in the TLS Redis
add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;

    my $port = $block->tls_redis_job;
    return if $dry_run || !defined $port;

    my ($job) = $body =~ /"job_id":"([0-9a-f]{16})"/;
    my $got = $job ? redis_cli($port, '-n', $block->tls_redis_db // 0,
                               'HGET',
                               block_prefix($block->seq_num) . "job:$job",
                               'job_id')
                   : '';

    Test::More::is($got, $job // 'a job', $block->name
                   . " - the job is in the TLS Redis");
});

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('more_headers', 'Content-Type: application/json')
        unless defined $block->more_headers;
});

run_tests();

__DATA__

=== TEST 1: rediss:// with a private CA
--- config
    location = /passkey/bind {
        passkey_redis rediss://127.0.0.1:$TEST_NGINX_REDIS_TLS_PORT
                      tls_trusted_certificate=$TEST_NGINX_TLS_DIR/ca.crt;
        passkey_bind;
    }
--- request
POST /passkey/bind
{"username":"tls-user"}
--- error_code: 200
--- response_body_like: "job_id":"[0-9a-f]{16}"
--- tls_redis_job eval: $ENV{TEST_NGINX_REDIS_TLS_PORT}



=== TEST 2: a server whose certificate another CA signed
--- config
    location = /passkey/bind {
        passkey_redis 127.0.0.1:$TEST_NGINX_REDIS_TLS_PORT tls
                      tls_trusted_certificate=$TEST_NGINX_TLS_DIR/other-ca.crt;
        passkey_bind;
    }
--- request
POST /passkey/bind
{"username":"tls-other-ca"}
--- error_code: 503
--- response_body_like: "code":"redis_unavailable"
--- error_log eval
qr/passkey redis "127\.0\.0\.1:\d+": the server's certificate is not trusted for "127\.0\.0\.1": /



=== TEST 3: a certificate for another name
--- config
    location = /passkey/bind {
        passkey_redis rediss://127.0.0.1:$TEST_NGINX_REDIS_TLS_PORT
                      tls_trusted_certificate=$TEST_NGINX_TLS_DIR/ca.crt
                      tls_name=redis.example.com;
        passkey_bind;
    }
--- request
POST /passkey/bind
{"username":"tls-wrong-name"}
--- error_code: 503
--- response_body_like: "code":"redis_unavailable"
--- error_log
the server's certificate is not trusted for "redis.example.com": the certificate is not for that name



=== TEST 4: a server that wants a client certificate gets one
--- config
    location = /passkey/bind {
        passkey_redis rediss://127.0.0.1:$TEST_NGINX_REDIS_MTLS_PORT/3
                      tls_trusted_certificate=$TEST_NGINX_TLS_DIR/ca.crt
                      tls_certificate=$TEST_NGINX_REDIS_TLS_DIR/client.crt
                      tls_certificate_key=$TEST_NGINX_REDIS_TLS_DIR/client.key;
        passkey_bind;
    }
--- request
POST /passkey/bind
{"username":"tls-client-cert"}
--- error_code: 200
--- response_body_like: "job_id":"[0-9a-f]{16}"
--- tls_redis_job eval: $ENV{TEST_NGINX_REDIS_MTLS_PORT}
--- tls_redis_db: 3



=== TEST 5: without the client certificate it wants
--- config
    location = /passkey/bind {
        passkey_redis rediss://127.0.0.1:$TEST_NGINX_REDIS_MTLS_PORT
                      tls_trusted_certificate=$TEST_NGINX_TLS_DIR/ca.crt;
        passkey_bind;
    }
--- request
POST /passkey/bind
{"username":"tls-no-client-cert"}
--- error_code: 503
--- response_body_like: "code":"redis_unavailable"



=== TEST 6: an ACL user, as a URL gives it
--- config
    location = /passkey/bind {
        passkey_redis rediss://passkey@127.0.0.1:$TEST_NGINX_REDIS_TLS_PORT/2
                      password_file=$TEST_NGINX_REDIS_TLS_DIR/acl_password
                      tls_trusted_certificate=$TEST_NGINX_TLS_DIR/ca.crt;
        passkey_bind;
    }
--- request
POST /passkey/bind
{"username":"acl-user"}
--- error_code: 200
--- response_body_like: "job_id":"[0-9a-f]{16}"
--- tls_redis_job eval: $ENV{TEST_NGINX_REDIS_TLS_PORT}
--- tls_redis_db: 2



=== TEST 7: an ACL user with the wrong password
--- config
    location = /passkey/bind {
        passkey_redis 127.0.0.1:$TEST_NGINX_REDIS_TLS_PORT tls user=passkey
                      password_file=$TEST_NGINX_REDIS_TLS_DIR/wrong_password
                      tls_trusted_certificate=$TEST_NGINX_TLS_DIR/ca.crt;
        passkey_bind;
    }
--- request
POST /passkey/bind
{"username":"acl-wrong"}
--- error_code: 503
--- response_body_like: "code":"redis_unavailable"
--- error_log eval
qr/passkey redis AUTH on "127\.0\.0\.1:\d+" failed: WRONGPASS/
--- no_error_log
not-the-pw



=== TEST 8: a password in the URL is refused: nginx -T would print it
--- config
    location = /passkey/bind {
        passkey_redis redis://passkey:secret@127.0.0.1:6379;
        passkey_bind;
    }
--- must_die
--- error_log
put the password in a file named by password_file=, as "nginx -T" prints the URL



=== TEST 9: TLS without a CA to check the server against
--- config
    location = /passkey/bind {
        passkey_redis rediss://127.0.0.1:6379;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_redis" "127.0.0.1:6379" with TLS needs tls_trusted_certificate= (or tls_verify=off)



=== TEST 10: tls_ parameters without TLS
--- config
    location = /passkey/bind {
        passkey_redis 127.0.0.1:6379 tls_name=redis.example.com;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_redis" "127.0.0.1:6379" has tls_ parameters but no "tls" (or rediss://)



=== TEST 11: an ACL user without a password
--- config
    location = /passkey/bind {
        passkey_redis redis://passkey@127.0.0.1:6379;
        passkey_bind;
    }
--- must_die
--- error_log
"passkey_redis" "127.0.0.1:6379": the user "passkey" needs password_file=
