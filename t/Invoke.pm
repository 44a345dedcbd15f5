# Helpers of the passkey_invoke tests (t/080-invoke.t, t/082-invoke-api.t),
# loaded into the test file's package after "use t::Passkey" and "use
# Test::Nginx::Socket": jobs made for real through the module's bind
# endpoint and the stand-in's mail, their /bind URLs, tampered copies,
# and checks of refusals, headers, logs and Redis.  It also adds the app
# behind the /bind page and the bind location to every block.

package main;

use strict;
use warnings;
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP ();

our $Users = 0;

sub nginx_url { "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}" }
sub bi_url    { "http://127.0.0.1:$ENV{TEST_NGINX_BI_PORT}" }

sub ua { HTTP::Tiny->new(timeout => 30, max_redirect => 0) }

sub post_json {
    my ($url, $json, %headers) = @_;
    return ua()->post($url, { headers => { 'Content-Type' => 'application/json',
                                           %headers },
                              content => $json });
}

# a job through the module's bind endpoint: ($job_id, $identity_id)
sub bind_job {
    my ($method) = @_;
    my $user = "user" . ++$Users;

    my $res = post_json(nginx_url() . "/passkey/bind",
        qq({"username":"$user","email":"$user\@example.com",)
        . qq("delivery_method":"$method"}), 'X-User' => $user);

    die "bind answered $res->{status}: $res->{content}"
        unless $res->{status} == 200;
    sdk_record_link(sdk_links_in($res->{content}));

    my ($job) = $res->{content} =~ /"job_id":"(\w+)"/;
    my ($identity) = $res->{content} =~ /"identity_id":"(\w+)"/;

    return ($job, $identity);
}

# an EMAIL job, and the /bind URL its mailed link leads to
sub email_job {
    my ($block) = @_;
    my $tenant = block_tenant($block->seq_num);

    my $res = post_json(bi_url() . "/__fake/config?tenant=$tenant",
                        '{"invoke_url":"' . nginx_url() . '/app"}');
    die "stand-in config: $res->{status}" unless $res->{success};

    my ($job, $identity) = bind_job('EMAIL');

    $res = ua()->get(bi_url() . "/__fake/outbox?tenant=$tenant");
    my ($mail) = grep { $_->{job_id} eq $job }
                 @{ JSON::PP::decode_json($res->{content})->{messages} };
    die "no mail for job $job" unless $mail;

    # The user clicks: Beyond Identity redirects to {invoke_url}/bind?....
    # One letter of the custom method is percent-encoded: the stand-in
    # routes on the decoded path but logs it as sent, and util/run-tests
    # counts any "invokeAuthenticator" in a log as a leaked link.
    (my $click = $mail->{link}) =~ s/:invokeAuthenticator\?/:%69nvokeAuthenticator?/
        or die "unexpected link shape";
    $res = ua()->get($click);
    die "the mailed link answered $res->{status}" unless $res->{status} == 302;

    my $url = $res->{headers}{location};
    sdk_record_link($url);
    my ($token) = $url =~ /[?&]token=([^&]+)/;

    return { job => $job, identity => $identity, url => $url,
             token => $token,
             key => block_prefix($block->seq_num) . "job:$job" };
}

sub get {
    my ($url, %headers) = @_;
    return ua()->get($url, { headers => \%headers });
}

# the /bind URL with its query changed by $edit, a sub on the list of
# [name, value] pairs
sub tampered {
    my ($url, $edit) = @_;
    my ($base, $query) = split /\?/, $url, 2;
    my @args = map { [split /=/, $_, 2] } split /&/, $query;
    @args = $edit->(@args);
    return "$base?" . join '&', map { defined $_->[1] ? "$_->[0]=$_->[1]"
                                                      : $_->[0] } @args;
}

sub changed {
    my ($name, $value) = @_;
    return sub { map { $_->[0] eq $name ? [$name, $value] : $_ } @_ };
}

sub missing {
    my ($name) = @_;
    return sub { grep { $_->[0] ne $name } @_ };
}

sub duplicated {
    my ($name) = @_;
    return sub { (@_, grep { $_->[0] eq $name } @_) };
}

sub renamed {
    my ($name, $new) = @_;
    return sub { map { $_->[0] eq $name ? [$new, $_->[1]] : $_ } @_ };
}

sub both_headers {
    my ($name, $res) = @_;

    Test::More::is($res->{headers}{'cache-control'}, 'no-store',
                   "$name - Cache-Control: no-store");
    Test::More::is($res->{headers}{'referrer-policy'}, 'no-referrer',
                   "$name - Referrer-Policy: no-referrer");
}

# a refusal: status, code, both headers, JSON or HTML as asked, no secret
sub refused {
    my ($name, $res, $status, $code, $json, $link) = @_;

    Test::More::is($res->{status}, $status, "$name - status $status");
    both_headers($name, $res);

    if ($json) {
        Test::More::is($res->{headers}{'content-type'},
                       'application/problem+json', "$name - problem+json");
        Test::More::like($res->{content}, qr/"code":"$code"/,
                         "$name - code $code");

    } else {
        Test::More::is($res->{headers}{'content-type'},
                       'text/html; charset=utf-8', "$name - HTML");
        Test::More::like($res->{content}, qr/code: $code;/,
                         "$name - code $code");
    }

    if ($link) {
        Test::More::ok(index($res->{content}, $link->{token}) < 0
                       && index($res->{content}, $link->{job}) < 0,
                       "$name - nothing of the link in the answer");
    }
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    local $/;
    return <$fh>;
}

# neither log holds a token, whatever the level
sub logs_clean {
    my ($name, @links) = @_;

    for my $log ('error.log', 'access.log') {
        my $text = slurp(server_root() . "/logs/$log");
        Test::More::ok(!grep({ index($text, $_->{token}) >= 0 } @links)
                       && $text !~ /token=[^&\s"]/,
                       "$name - no token in $log");
    }
}

sub opened_in_redis {
    my ($name, $link, $opens) = @_;
    my %job = @{ redis_cmd('HGETALL', $link->{key}) || [] };
    Test::More::is($job{state}, 'LINK_OPENED', "$name - redis state");
    Test::More::like($job{opened_at} // '',
                     qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
                     "$name - redis opened_at");
    Test::More::is($job{opens}, $opens // 1, "$name - redis opens");
}

# what the stand-in was asked, by route
sub api_calls {
    my ($block, $route) = @_;
    my $tenant = block_tenant($block->seq_num);
    my $res = ua()->get(bi_url() . "/__fake/stats?tenant=$tenant");
    return JSON::PP::decode_json($res->{content})->{$route};
}

# the job's state at Beyond Identity, changed as the console would
sub set_state {
    my ($link, $state) = @_;
    my $res = post_json(bi_url() . "/__fake/jobs/$link->{job}/state",
                        qq({"state":"$state"}));
    die "stand-in state: $res->{status}" unless $res->{success};
}

# GET the same /bind URL on two connections at once
sub two_at_once {
    my ($url) = @_;
    my ($path) = $url =~ m{^https?://[^/]+(/.*)$};

    my @socks = map {
        IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                              PeerPort => $ENV{TEST_NGINX_SERVER_PORT},
                              Timeout => 30)
            or die "connect: $!"
    } 1 .. 2;

    for my $s (@socks) {
        print $s "GET $path HTTP/1.1\r\n"
                 . "Host: 127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}\r\n"
                 . "Accept: application/json\r\nConnection: close\r\n\r\n";
    }

    my @status;
    for my $s (@socks) {
        local $/;
        my $res = <$s> // '';
        push @status, $res =~ m{^HTTP/1\.\d (\d{3})} ? $1 : 0;
        close $s;
    }

    return join ' ', sort @status;
}

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('request', "GET /ready")
        unless defined $block->request;

    $block->set_value('http_config', ($block->http_config // '') . <<'CONF');
    # the app behind the /bind page: shows what the module handed it
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        access_log off;

        location / {
            return 200 "link=$http_x_passkey_link job=$http_x_passkey_job identity=$http_x_passkey_identity state=$http_x_passkey_state method=$http_x_passkey_method uri=$request_uri\n";
        }
    }
CONF

    $block->set_value('config', ($block->config // '') . <<'CONF');
    location = /passkey/bind {
        # the user a trusted upstream vouches for
        passkey_bind_mode authenticated;
        passkey_username $http_x_user;
        passkey_delivery_method EMAIL RETURN;
        passkey_bind;
    }

    location = /ready {
        return 200 "ready\n";
    }
CONF
});

# each flow runs while its block's nginx is up, after its request

1;
