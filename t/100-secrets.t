# Secret files: refused when other users may access them; a second client
# secret for rotation, tried when the token endpoint rejects the first and
# remembered by all workers; a reload re-reads the files, and a token got
# with the old secret is not used after it.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use Digest::SHA qw(sha256_hex);
use Time::HiRes qw(sleep);

master_on();
workers(2);

repeat_each(1);
no_shuffle();

our $Secrets = $ENV{TEST_NGINX_SECRETS} // '';
our $Servroot = $ENV{TEST_NGINX_SERVROOT} || 't/servroot';

# how the stand-in names a secret in /__fake/requests: never the secret
sub fp {
    my ($secret) = @_;
    return substr(sha256_hex($secret), 0, 16);
}

our $Fp1 = fp('passkey-secret');
our $Fp2 = fp('passkey-secret-2');
our $Fp3 = fp('passkey-secret-3');

sub bind_req {
    my ($user) = @_;
    return "POST /passkey/bind\n{\"username\":\"$user\"}";
}

sub write_secret {
    my ($name, $secret) = @_;

    my $file = "$Secrets/$name";
    my $tmp = "$file.tmp";

    open my $fh, '>', $tmp or die "cannot write $tmp: $!";
    print $fh "$secret\n";
    close $fh;
    chmod 0600, $tmp;
    rename $tmp, $file or die "cannot rename $tmp: $!";
}

# HUP to the master; back once the old workers have stopped accepting
sub reload_nginx {
    my $log = "$Servroot/logs/error.log";
    my $start = -s $log // 0;

    open my $fh, '<', "$Servroot/logs/nginx.pid" or die "no pid file: $!";
    my $master = <$fh>;
    close $fh;
    chomp $master;

    kill 'HUP', $master or die "cannot signal $master: $!";

    my $wait = $ENV{TEST_NGINX_USE_VALGRIND} ? 60 : 10;

    for (1 .. $wait * 10) {
        if (open my $lf, '<', $log) {
            seek $lf, $start, 0;
            local $/;
            my $new = <$lf> // '';
            close $lf;

            my $n = () = $new =~ /gracefully shutting down/g;
            if ($n >= 2) {
                sleep($ENV{TEST_NGINX_USE_VALGRIND} ? 2 : 0.3);
                return;
            }
        }

        sleep 0.1;
    }

    die "nginx did not reload in $wait s";
}

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('more_headers', 'Content-Type: application/json')
        unless defined $block->more_headers;

    if (!$block->must_die
        && (!defined $block->config || $block->config !~ /passkey_bind/))
    {
        $block->set_value('config', ($block->config // '') . <<'CONF');
    location = /passkey/bind {
        passkey_bind;
    }
CONF
    }

    # "--- reload_secret: S": the file "reload_secret" holds
    # "passkey-secret" when nginx starts; after the block's first request
    # it holds S, and nginx is reloaded
    if (defined $block->reload_secret) {
        write_secret('reload_secret', 'passkey-secret');
    }
});

add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;

    return if $dry_run || $req_idx != 0;

    my $secret = $block->reload_secret;
    return unless defined $secret;

    $secret =~ s/^\s+|\s+$//g;

    write_secret('reload_secret', $secret);
    reload_nginx();
});

run_tests();

__DATA__

=== TEST 1: a client secret file that others can read is refused
--- http_config
    # passkey: no defaults
    passkey_client_secret_file $TEST_NGINX_SECRETS/client_secret_0644;
--- config
--- must_die
--- error_log eval
qr{"passkey_client_secret_file": secret file "\S+/client_secret_0644" is accessible by other users, run "chmod o-rwx \S+/client_secret_0644"}



=== TEST 2: a secret file that others can write is refused
--- http_config
    # passkey: no defaults
    passkey_client_secret_file $TEST_NGINX_SECRETS/client_secret_0602;
--- config
--- must_die
--- error_log eval
qr{"passkey_client_secret_file": secret file "\S+/client_secret_0602" is accessible by other users, run "chmod o-rwx \S+/client_secret_0602"}



=== TEST 3: the second client secret file is checked too
--- http_config
    # passkey: no defaults
    passkey_client_secret_file $TEST_NGINX_SECRETS/client_secret
                               $TEST_NGINX_SECRETS/client_secret_0644;
--- config
--- must_die
--- error_log eval
qr{"passkey_client_secret_file": secret file "\S+/client_secret_0644" is accessible by other users}



=== TEST 4: an API token file that others can read is refused
--- http_config
    # passkey: no defaults
    passkey_api_token_file $TEST_NGINX_SECRETS/api_token_0644;
--- config
--- must_die
--- error_log eval
qr{"passkey_api_token_file": secret file "\S+/api_token_0644" is accessible by other users, run "chmod o-rwx \S+/api_token_0644"}



=== TEST 5: a Redis password file that others can read is refused
--- http_config
    # passkey: no defaults
    passkey_redis 127.0.0.1:6379
                  password_file=$TEST_NGINX_SECRETS/client_secret_0644;
--- config
--- must_die
--- error_log eval
qr{"passkey_redis": secret file "\S+/client_secret_0644" is accessible by other users}



=== TEST 6: passkey_api_token_file takes one file
--- http_config
    # passkey: no defaults
    passkey_api_token_file $TEST_NGINX_SECRETS/api_token
                           $TEST_NGINX_SECRETS/api_token;
--- config
--- must_die
--- error_log
invalid number of arguments in "passkey_api_token_file" directive



=== TEST 7: a secret file its group can read (0640) is accepted
--- config
    location = /passkey/bind {
        passkey_client_secret_file $TEST_NGINX_SECRETS/client_secret_0640;
        passkey_bind;
    }
--- request eval
main::bind_req("u7")
--- error_code: 200
--- response_body_like: "job_id"



=== TEST 8: two secrets, the first accepted: the second is never sent
--- config
    location = /passkey/bind {
        passkey_client_secret_file $TEST_NGINX_SECRETS/client_secret
                                   $TEST_NGINX_SECRETS/client_secret2;
        passkey_bind;
    }
--- request eval
[main::bind_req("u8"), "GET /fake/requests"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/"job_id"/,
 qr/^(?!.*"client_secret_sha256":"$::Fp2")(?!(?:.*"route":"token"){2}).*"client_secret_sha256":"$::Fp1".*"route":"token","status":200/s]
--- no_error_log
was rejected
[error]



=== TEST 9: the first secret is rejected: a warning, and the bind works
--- fake_config
{"client_secrets":["passkey-secret-2"]}
--- config
    location = /passkey/bind {
        passkey_client_secret_file $TEST_NGINX_SECRETS/client_secret
                                   $TEST_NGINX_SECRETS/client_secret2;
        passkey_bind;
    }
--- request eval
main::bind_req("u9")
--- error_code: 200
--- response_body_like: "job_id"
--- error_log
passkey: client secret 1 of client "passkey-client" was rejected, secret 2 was accepted; finish the rotation
--- no_error_log
[error]



=== TEST 10: the first secret is rejected, the second is sent at once
--- fake_config
{"client_secrets":["passkey-secret-2"]}
--- config
    location = /passkey/bind {
        passkey_client_secret_file $TEST_NGINX_SECRETS/client_secret
                                   $TEST_NGINX_SECRETS/client_secret2;
        passkey_bind;
    }
--- request eval
[main::bind_req("u10"), "GET /fake/requests"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/"job_id"/,
 qr/^(?!(?:.*"route":"token"){3}).*"client_secret_sha256":"$::Fp1".*"route":"token","status":401.*"client_secret_sha256":"$::Fp2".*"route":"token","status":200.*"route":"create_job"/s]
--- no_error_log
[error]



=== TEST 11: the next token is fetched with the secret that worked
--- fake_config
{"client_secrets":["passkey-secret-2"]}
--- config
    location = /passkey/bind {
        passkey_client_secret_file $TEST_NGINX_SECRETS/client_secret
                                   $TEST_NGINX_SECRETS/client_secret2;
        passkey_bind;
    }
--- request eval
[main::bind_req("u11a"), "POST /fake/tokens/revoke\n{}",
 main::bind_req("u11b"), main::bind_req("u11c"), "GET /fake/requests",
 "GET /fake/stats"]
--- error_code eval
[200, 200, 200, 200, 200, 200]
--- response_body_like eval
[qr/"job_id"/, qr/"revoked":\d/, qr/"job_id"/, qr/"job_id"/,
 qr/"client_secret_sha256":"$::Fp1".*"route":"token","status":401.*"client_secret_sha256":"$::Fp2".*"route":"token","status":200.*"route":"create_job".*"status":401.*"client_secret_sha256":"$::Fp2".*"route":"token","status":200/s,
 qr/"token":3\}/]
--- no_error_log
[error]



=== TEST 12: back from the second secret to the first
--- fake_config
{"client_secrets":["passkey-secret-2"]}
--- config
    location = /passkey/bind {
        passkey_client_secret_file $TEST_NGINX_SECRETS/client_secret
                                   $TEST_NGINX_SECRETS/client_secret2;
        passkey_bind;
    }
--- request eval
[main::bind_req("u12a"),
 "POST /fake/config\n{\"client_secrets\":[\"passkey-secret\"]}",
 "POST /fake/tokens/revoke\n{}", main::bind_req("u12b"), "GET /fake/stats"]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_body_like eval
[qr/"job_id"/, qr/"client_secrets_sha256":\["$::Fp1"\]/, qr/"revoked":\d/,
 qr/"job_id"/, qr/"token":4\}/]
--- block_error_log
passkey: client secret 1 of client "passkey-client" was rejected, secret 2 was accepted; finish the rotation
passkey: client secret 2 of client "passkey-client" was rejected, secret 1 was accepted
--- no_error_log
[error]



=== TEST 13: 400 "invalid_client" is a rejection too
--- fake_config
{"client_secrets":["passkey-secret","passkey-secret-2"]}
--- fault
{"route":"token","type":"status","status":400,"body":"{\"error\":\"invalid_client\",\"error_description\":\"no\"}"}
--- config
    location = /passkey/bind {
        passkey_client_secret_file $TEST_NGINX_SECRETS/client_secret
                                   $TEST_NGINX_SECRETS/client_secret2;
        passkey_bind;
    }
--- request eval
main::bind_req("u13")
--- error_code: 200
--- response_body_like: "job_id"
--- error_log
passkey: client secret 1 of client "passkey-client" was rejected, secret 2 was accepted
--- no_error_log
[error]



=== TEST 14: other token endpoint failures do not switch secrets
--- fake_config
{"client_secrets":["passkey-secret","passkey-secret-2"]}
--- fault
{"route":"token","type":"status","status":400,"body":"{\"error\":\"invalid_request\"}","count":0}
--- config
    location = /passkey/bind {
        passkey_client_secret_file $TEST_NGINX_SECRETS/client_secret
                                   $TEST_NGINX_SECRETS/client_secret2;
        passkey_bind;
    }
--- request eval
[main::bind_req("u14"), "GET /fake/requests"]
--- error_code eval
[502, 200]
--- response_body_like eval
[qr/"code":"api_credentials_rejected"/,
 qr/^(?!.*"client_secret_sha256":"$::Fp2").*"client_secret_sha256":"$::Fp1"/s]
--- block_error_log
answered 400 "invalid_request"
--- no_error_log
was rejected



=== TEST 15: both secrets rejected: an error, as with one
--- fake_config
{"client_secrets":["passkey-secret-3"]}
--- config
    location = /passkey/bind {
        passkey_client_secret_file $TEST_NGINX_SECRETS/client_secret
                                   $TEST_NGINX_SECRETS/client_secret2;
        passkey_bind;
    }
--- request eval
main::bind_req("u15")
--- error_code: 502
--- response_body_like: "code":"api_credentials_rejected"
--- error_log
answered 401 "invalid_client", both client secrets were rejected
--- no_error_log
was accepted



=== TEST 16: the same secret twice: a warning, one secret
--- config
    location = /passkey/bind {
        passkey_client_secret_file $TEST_NGINX_SECRETS/client_secret
                                   $TEST_NGINX_SECRETS/client_secret_0640;
        passkey_bind;
    }
--- request eval
main::bind_req("u16")
--- error_code: 200
--- response_body_like: "job_id"
--- error_log eval
qr/\[warn\] .*"passkey_client_secret_file": secret files "\S+\/client_secret" and "\S+\/client_secret_0640" hold the same secret, the second one is ignored/



=== TEST 17: a reload re-reads the secret file; the old token is dropped
--- fake_config
{"client_secrets":["passkey-secret","passkey-secret-3"]}
--- config
    location = /passkey/bind {
        passkey_client_secret_file $TEST_NGINX_SECRETS/reload_secret;
        passkey_bind;
    }
--- reload_secret: passkey-secret-3
--- request eval
[main::bind_req("u17a"), main::bind_req("u17b"), "GET /fake/requests"]
--- timeout: 30
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[qr/"job_id"/, qr/"job_id"/,
 qr/^(?!(?:.*"route":"token"){3}).*"client_secret_sha256":"$::Fp1".*"route":"token","status":200.*"route":"create_job".*"client_secret_sha256":"$::Fp3".*"route":"token","status":200.*"route":"create_job"/s]
--- no_error_log
[error]



=== TEST 18: a reload with the same secret keeps the token
--- config
    location = /passkey/bind {
        passkey_client_secret_file $TEST_NGINX_SECRETS/reload_secret;
        passkey_bind;
    }
--- reload_secret: passkey-secret
--- request eval
[main::bind_req("u18a"), main::bind_req("u18b"), "GET /fake/stats"]
--- timeout: 30
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[qr/"job_id"/, qr/"job_id"/, qr/"create_job":2,.*"token":1\}/]
--- no_error_log
[error]
