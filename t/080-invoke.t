# The invoke_url handler (passkey_invoke): the /bind URL that an emailed
# binding link leads to is checked against the configuration, the job in
# Redis and the job's state at Beyond Identity, and handed to the app, to
# a static page or by a redirect with the link in the fragment; again
# while the job is live, or once with passkey_invoke_reopen off.
#
# The links are made for real: each flow creates an EMAIL job through the
# module's bind endpoint, reads Beyond Identity's mail from the stand-in's
# outbox and follows its link there, which answers 302 to the /bind URL.
# That happens while the block's nginx runs, so it is Perl code in a
# response body check keyed on the block name; each block's own request
# is only "GET /ready".

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP ();
use URI::Escape qw(uri_unescape);

$ENV{TEST_NGINX_HTML_DIR} ||= html_dir();

repeat_each(1);
no_shuffle();

# nginx's own debug lines show the request line as it came, token and
# all: never run production at "debug", nor these tests
log_level('info');

our %Flows;
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
run_flows(\%Flows);


$Flows{'a good link reaches the app byte for byte, while the job is live'}
= sub {
    my ($block, $name) = @_;
    my $link = email_job($block);
    my $expected = "link=$link->{url} job=$link->{job} "
                   . "identity=$link->{identity} state=LINK_OPENED "
                   . "method=EMAIL uri=/app/bind\n";

    my $calls = api_calls($block, 'get_job');
    my $res = get($link->{url});

    Test::More::is($res->{status}, 200, "$name - 200 from the app");
    Test::More::is($res->{content}, $expected,
                   "$name - the app got the link as the browser sent it");
    both_headers($name, $res);
    opened_in_redis($name, $link);
    Test::More::is(api_calls($block, 'get_job'), $calls + 1,
                   "$name - the job's state was read from the API");

    # a reload, or the user after a mail scanner
    $res = get($link->{url});
    Test::More::is($res->{status}, 200, "$name - opened again: 200");
    Test::More::is($res->{content}, $expected, "$name - the same link");
    opened_in_redis("$name - again", $link, 2);

    # the passkey is made: the link is done, whatever Redis said
    my $done = post_json(bi_url() . "/__fake/jobs/$link->{job}/complete",
                         '{}');
    die "stand-in complete: $done->{status}" unless $done->{success};

    refused("$name - complete", get($link->{url}), 410, 'job_complete',
            0, $link);
    my %job = @{ redis_cmd('HGETALL', $link->{key}) };
    Test::More::is($job{state}, 'COMPLETE', "$name - recorded in redis");

    $calls = api_calls($block, 'get_job');
    refused("$name - complete, JSON",
            get($link->{url}, Accept => 'application/json'), 410,
            'job_complete', 1, $link);
    Test::More::is(api_calls($block, 'get_job'), $calls,
                   "$name - then answered from redis alone");

    my $html = get($link->{url})->{content};
    Test::More::like($html,
                     qr{<h1>A passkey was already set up with this link\.</h1>},
                     "$name - the page says why");

    logs_clean($name, $link);
};


$Flows{'a static page, once with passkey_invoke_reopen off'} = sub {
    my ($block, $name) = @_;
    my $link = email_job($block);

    my $res = get($link->{url});

    Test::More::is($res->{status}, 200, "$name - 200");
    Test::More::is($res->{content},
                   "<!DOCTYPE html><title>bind</title>"
                   . "<script src=\"/sdk.js\"></script>\n",
                   "$name - the page as it is, nothing injected");
    both_headers($name, $res);

    refused("$name - replay", get($link->{url}), 409, 'link_already_used',
            0, $link);
    refused("$name - replay, JSON",
            get($link->{url}, Accept => 'application/json'), 409,
            'link_already_used', 1, $link);
    Test::More::like(get($link->{url})->{content},
                     qr{<h1>This link was already used\.</h1>},
                     "$name - the page says why");

    logs_clean($name, $link);
};


$Flows{'the redirect style carries the link in the fragment'} = sub {
    my ($block, $name) = @_;
    my $link = email_job($block);

    my $res = get($link->{url});

    Test::More::is($res->{status}, 302, "$name - 302");
    both_headers($name, $res);

    my $location = $res->{headers}{location} // '';
    my ($to, $fragment) = $location =~ m{^(http://[^#]+)#(.*)$};

    Test::More::is($to, nginx_url() . "/app/finish",
                   "$name - to the configured page");
    Test::More::unlike($fragment, qr/[^A-Za-z0-9%._~-]/,
                       "$name - the fragment is percent-encoded");
    Test::More::is(uri_unescape($fragment), $link->{url},
                   "$name - the fragment is the link");

    $res = get($link->{url});
    Test::More::is($res->{status}, 302, "$name - a reload: 302 again");
    Test::More::is($res->{headers}{location}, $location,
                   "$name - to the same place");

    logs_clean($name, $link);
};


$Flows{'reopen off: two requests with one link at once, one gets through'}
= sub {
    my ($block, $name) = @_;

    for my $i (1 .. 3) {
        my $link = email_job($block);
        Test::More::is(two_at_once($link->{url}), '200 409',
                       "$name - round $i: one 200, one 409");
    }
};


$Flows{'HEAD checks a link without using it up'} = sub {
    my ($block, $name) = @_;
    my $link = email_job($block);

    my $res = ua()->request('HEAD', $link->{url});
    Test::More::is($res->{status}, 200, "$name - HEAD 200");
    both_headers("$name - HEAD", $res);

    my %job = @{ redis_cmd('HGETALL', $link->{key}) };
    Test::More::ok(!exists $job{opened_at}, "$name - HEAD left no mark");

    Test::More::is(get($link->{url})->{status}, 200, "$name - GET 200");

    $res = ua()->request('HEAD', $link->{url});
    Test::More::is($res->{status}, 200, "$name - HEAD after use: 200");
    both_headers("$name - HEAD after use", $res);
    opened_in_redis("$name - HEAD did not count", $link, 1);

    # and what Beyond Identity says counts for HEAD too
    set_state($link, 'REVOKED');
    $res = ua()->request('HEAD', $link->{url});
    Test::More::is($res->{status}, 410, "$name - HEAD of a revoked job: 410");
    both_headers("$name - HEAD of a revoked job", $res);
};


$Flows{'expired, revoked and complete jobs'} = sub {
    my ($block, $name) = @_;

    my @cases = (
        ['expire_time', '2020-01-01T00:00:00.000000Z', 410, 'link_expired'],
        ['state', 'EXPIRED', 410, 'link_expired'],
        ['state', 'REVOKED', 410, 'job_revoked'],
        ['state', 'COMPLETE', 410, 'job_complete'],
        ['state', 'FAILED_TO_SEND', 404, 'unknown_job'],
        ['gone_at', '2026-01-01T00:00:00Z', 404, 'unknown_job'],
    );

    my $i = 0;
    for my $case (@cases) {
        my ($field, $value, $status, $code) = @$case;
        my $json = $i++ % 2;
        my $link = email_job($block);

        redis_cmd('HSET', $link->{key}, $field, $value);

        refused("$name - $field $value", get($link->{url},
                Accept => $json ? 'application/json' : 'text/html'),
                $status, $code, $json, $link);
    }

    # one a minute from now is still good
    my $link = email_job($block);
    my @t = gmtime(time + 60);
    redis_cmd('HSET', $link->{key}, 'expire_time',
              sprintf('%04d-%02d-%02dT%02d:%02d:%02d.123456Z',
                      $t[5] + 1900, $t[4] + 1, @t[3, 2, 1, 0]));
    Test::More::is(get($link->{url})->{status}, 200,
                   "$name - expiring in a minute: 200");

    # the console revoked it, completed it, or it expired at BI: the API
    # says so while Redis still holds it as sent
    for my $case (['REVOKED', 410, 'job_revoked'],
                  ['COMPLETE', 410, 'job_complete'],
                  ['EXPIRED', 410, 'link_expired'],
                  ['FAILED_TO_SEND', 404, 'unknown_job'])
    {
        my ($state, $status, $code) = @$case;
        $link = email_job($block);
        set_state($link, $state);

        refused("$name - $state at Beyond Identity",
                get($link->{url}, Accept => 'application/json'),
                $status, $code, 1, $link);

        my %job = @{ redis_cmd('HGETALL', $link->{key}) };
        Test::More::is($job{state}, $state, "$name - $state recorded");
        Test::More::is($job{job_id}, $link->{job},
                       "$name - $state: redis still holds the job");
    }
};


$Flows{'tampered links are refused'} = sub {
    my ($block, $name) = @_;
    my $link = email_job($block);
    my $url = $link->{url};
    my $n = 0;

    my @cases = (
        ['api_base_url of another host',
         changed('api_base_url', 'https%3A%2F%2Fevil.example'),
         403, 'foreign_link'],
        ['api_base_url with a longer host',
         changed('api_base_url',
                 "http%3A%2F%2F127.0.0.1%3A$ENV{TEST_NGINX_BI_PORT}.evil"),
         403, 'foreign_link'],
        ['api_base_url with a bad escape',
         changed('api_base_url', 'http%3A%2F%2F127.0.0.1%3Zbad'),
         400, 'invalid_link'],
        ['another tenant_id', changed('tenant_id', 'someoneelse'),
         403, 'foreign_link'],
        ['another realm_id', changed('realm_id', 'r2'), 403, 'foreign_link'],
        ['another identity_id', changed('identity_id', '0123456789abcdef'),
         404, 'unknown_job'],
        ['another job_id', changed('job_id', 'fedcba9876543210'),
         404, 'unknown_job'],
        ['a job_id that is no id', changed('job_id', 'a.b'),
         400, 'invalid_link'],
        ['a token of 2049 bytes', changed('token', 'x' x 2049),
         400, 'invalid_link'],
        ['a token with a bad escape', changed('token', 'abc%zz'),
         400, 'invalid_link'],
        ['an empty token', changed('token', ''), 400, 'invalid_link'],
        ['TOKEN for token', renamed('token', 'TOKEN'), 400, 'invalid_link'],
        ['job%5Fid for job_id', renamed('job_id', 'job%5Fid'),
         400, 'invalid_link'],
        ['a second token spelled tok%65n',
         sub { (@_, ['tok%65n', 'other']) }, 400, 'invalid_link'],
        ['a second tenant spelled Tenant_ID',
         sub { (@_, ['Tenant_ID', 'someoneelse']) }, 400, 'invalid_link'],
        (map { ["no $_", missing($_), 400, 'invalid_link'],
               ["$_ twice", duplicated($_), 400, 'invalid_link'] }
         qw(api_base_url tenant_id realm_id identity_id job_id token)),
    );

    for my $case (@cases) {
        my ($what, $edit, $status, $code) = @$case;
        my $json = $n++ % 2;

        refused("$name - $what", get(tampered($url, $edit),
                $json ? (Accept => 'application/problem+json') : ()),
                $status, $code, $json, $link);
    }

    # none of them used the link up
    my $res = get($url);
    Test::More::is($res->{status}, 200, "$name - the real link still works");

    logs_clean($name, $link);
};


$Flows{'api_base_url encoded or not, any case, one trailing slash'} = sub {
    my ($block, $name) = @_;
    my $api = "127.0.0.1:$ENV{TEST_NGINX_BI_AUTH_PORT}";

    for my $value ("http://$api", "HTTP%3A%2F%2F$api%2F", "Http://$api/") {
        my $link = email_job($block);
        my $url = tampered($link->{url}, changed('api_base_url', $value));
        Test::More::is(get($url)->{status}, 200, "$name - $value");
    }

    my $link = email_job($block);
    my $url = tampered($link->{url},
                       changed('api_base_url', "http://$api//"));
    refused("$name - two trailing slashes", get($url), 403, 'foreign_link',
            0, $link);
};


$Flows{"another identity's job and a RETURN job read as unknown"} = sub {
    my ($block, $name) = @_;
    my $mine = email_job($block);
    my $theirs = email_job($block);

    refused("$name - another identity", get(tampered($mine->{url},
            changed('identity_id', $theirs->{identity}))), 404,
            'unknown_job', 0, $mine);

    my ($job, $identity) = bind_job('RETURN');
    my $url = tampered($mine->{url}, sub {
        map { $_->[0] eq 'job_id' ? ['job_id', $job]
              : $_->[0] eq 'identity_id' ? ['identity_id', $identity]
              : $_ } @_ });

    refused("$name - a RETURN job", get($url, Accept => 'application/json'),
            404, 'unknown_job', 1, $mine);

    Test::More::is(get($mine->{url})->{status}, 200,
                   "$name - the right link still works");
};


$Flows{'the app failing still answers no-store'} = sub {
    my ($block, $name) = @_;
    my $link = email_job($block);

    my $res = get($link->{url});
    Test::More::is($res->{status}, 502, "$name - 502");
    both_headers($name, $res);

    logs_clean($name, $link);
};


$Flows{'an internal redirect after the check does not use the link twice'}
= sub {
    my ($block, $name) = @_;
    my $link = email_job($block);

    my $res = get($link->{url});
    Test::More::is($res->{status}, 200, "$name - 200");
    Test::More::is($res->{content}, "page\n", "$name - the fallback page");
    Test::More::is($res->{headers}{'x-passkey-job'}, $link->{job},
                   "$name - the variables survive the redirect");
    both_headers($name, $res);
    opened_in_redis($name, $link, 1);
};


$Flows{'a redirect URL with a fragment of its own is refused'} = sub {
    my ($block, $name) = @_;
    my $link = email_job($block);

    refused($name, get($link->{url}, Accept => 'application/json'), 500,
            'internal_error', 1, $link);
};

$Flows{'a redirect built from variables may only go to an allowed origin'}
= sub {
    my ($block, $name) = @_;
    my $link = email_job($block);

    # the origin comes from a header here: an attacker's choice
    refused("$name - elsewhere",
            get($link->{url}, Accept => 'application/json',
                'X-To' => 'evil.example.net'),
            500, 'internal_error', 1, $link);

    $link = email_job($block);

    my $res = get($link->{url},
                  'X-To' => "127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}");

    Test::More::is($res->{status}, 302, "$name - allowed: 302");
    Test::More::like($res->{headers}{location} // '',
                     qr{^http://127\.0\.0\.1:\d+/app/finish\?job=$link->{job}#http},
                     "$name - allowed: to the page, the link in the fragment");
};

$Flows{'"//host" is another site, whatever its variables'} = sub {
    my ($block, $name) = @_;
    my $link = email_job($block);

    refused($name, get($link->{url}, Accept => 'application/json'), 500,
            'internal_error', 1, $link);
};


# access checks and limits come first: what they refuse uses no link
$Flows{'access checks and limits run before the link check'} = sub {
    my ($block, $name) = @_;
    my $link = email_job($block);
    my ($query) = $link->{url} =~ /(\?.*)$/;
    my $res;

    $res = get($link->{url}, 'X-Limit' => 'k1');
    Test::More::is($res->{status}, 401, "$name - auth_request refuses: 401");

    $res = get($link->{url}, 'X-Limit' => 'k1', 'X-Session' => 'ok');
    Test::More::is($res->{status}, 503, "$name - limit_req refuses: 503");

    $res = get(nginx_url() . "/denied/bind$query", 'X-Session' => 'ok');
    Test::More::is($res->{status}, 403, "$name - deny refuses: 403");

    my %job = @{ redis_cmd('HGETALL', $link->{key}) || [] };
    Test::More::ok(!exists $job{opened_at}, "$name - the link is unused");

    $res = get($link->{url}, 'X-Limit' => 'k2', 'X-Session' => 'ok');
    Test::More::is($res->{status}, 200, "$name - then it opens: 200");
    Test::More::like($res->{content}, qr/^link=\Q$link->{url}\E /,
                     "$name - the app gets the link");
    opened_in_redis($name, $link, 1);
    logs_clean($name, $link);
};


# the Admin Console, batch jobs and other backends of the tenant mail
# links that lead here too: Redis has never heard of their jobs
$Flows{'a job Redis does not hold is verified with the API'} = sub {
    my ($block, $name) = @_;
    my $link = email_job($block);
    redis_cmd('DEL', $link->{key});

    my $calls = api_calls($block, 'get_job');
    my $res = get($link->{url});

    Test::More::is($res->{status}, 200, "$name - 200");
    Test::More::like($res->{content},
                     qr/^link=\Q$link->{url}\E job=$link->{job} /,
                     "$name - the app gets the link");
    Test::More::is(api_calls($block, 'get_job'), $calls + 1,
                   "$name - one API call");

    my %job = @{ redis_cmd('HGETALL', $link->{key}) };
    Test::More::is($job{identity_id}, $link->{identity},
                   "$name - recorded: identity");
    Test::More::is($job{delivery_method}, 'EMAIL', "$name - recorded: EMAIL");
    Test::More::like($job{adopted_at} // '', qr/^\d{4}-\d\d-\d\dT/,
                     "$name - recorded: adopted_at");
    Test::More::is($job{opens}, 1, "$name - recorded: one opening");

    my $ttl = redis_cmd('TTL', $link->{key});
    Test::More::ok($ttl > 6 * 86400 && $ttl <= 7 * 86400,
                   "$name - kept until the job expires ($ttl s)");

    Test::More::is(get($link->{url})->{status}, 200,
                   "$name - then known: 200");

    # a job made in the Admin Console for that identity: its mail, its
    # click, its /bind URL
    my $tenant = block_tenant($block->seq_num);
    $res = post_json(bi_url() . "/__fake/console/jobs?tenant=$tenant",
                     qq({"realm":"r1","identity_id":"$link->{identity}"}));
    die "console job: $res->{status} $res->{content}"
        unless $res->{status} == 200;
    my $console = JSON::PP::decode_json($res->{content});
    (my $click = $console->{link})
        =~ s/:invokeAuthenticator\?/:%69nvokeAuthenticator?/;
    $res = ua()->get($click);
    my $bind = $res->{headers}{location} // '';
    Test::More::like($bind, qr{/app/bind\?api_base_url=},
                     "$name - console job: BI redirects to /app/bind");

    $res = get($bind);
    Test::More::is($res->{status}, 200, "$name - console job: 200");
    Test::More::like($res->{content},
                     qr/^link=\Q$bind\E job=$console->{job}{id} /,
                     "$name - console job: the app gets its link");
    my $key = block_prefix($block->seq_num) . "job:$console->{job}{id}";
    %job = @{ redis_cmd('HGETALL', $key) };
    Test::More::ok($job{adopted_at} && !exists $job{username},
                   "$name - console job: recorded, with no owner name");

    # a job at BI that is not this link's: another identity in the URL
    # finds nothing at BI; a RETURN job has no emailed link
    my ($job, $identity) = bind_job('RETURN');
    redis_cmd('DEL', block_prefix($block->seq_num) . "job:$job");

    my $url = tampered($link->{url}, sub {
        map { $_->[0] eq 'job_id' ? ['job_id', $job]
              : $_->[0] eq 'identity_id' ? ['identity_id', $identity]
              : $_ } @_ });
    refused("$name - a RETURN job", get($url, Accept => 'application/json'),
            404, 'unknown_job', 1, $link);
    Test::More::is(redis_cmd('EXISTS',
                             block_prefix($block->seq_num) . "job:$job"),
                   0, "$name - a RETURN job is not recorded");

    $url = tampered($link->{url}, changed('job_id', 'fedcba9876543210'));
    refused("$name - no such job at BI", get($url), 404, 'unknown_job', 0,
            $link);

    logs_clean($name, $link);
};


$Flows{'passkey_invoke_unknown_jobs refuse'} = sub {
    my ($block, $name) = @_;
    my $link = email_job($block);
    redis_cmd('DEL', $link->{key});

    my $calls = api_calls($block, 'get_job');
    refused($name, get($link->{url}, Accept => 'application/json'), 404,
            'unknown_job', 1, $link);
    Test::More::is(api_calls($block, 'get_job'), $calls,
                   "$name - without asking the API");
};


$Flows{'the API cannot be asked'} = sub {
    my ($block, $name) = @_;
    my $tenant = block_tenant($block->seq_num);
    my $link = email_job($block);
    my $res;

    my $fault = sub {
        my $r = post_json(bi_url() . "/__fake/faults",
                          qq({"tenant":"$tenant","route":"get_job",)
                          . qq("type":"status","status":503}));
        die "stand-in fault: $r->{status}" unless $r->{success};
    };

    # Redis holds it: handed over on that, and the SDK asks BI itself
    $fault->();
    $res = get($link->{url});
    Test::More::is($res->{status}, 200, "$name - a known job: 200");
    opened_in_redis($name, $link, 1);

    # Redis does not: nothing vouches for it
    $link = email_job($block);
    redis_cmd('DEL', $link->{key});
    $fault->();
    refused("$name - an unknown job",
            get($link->{url}, Accept => 'application/json'), 502,
            'api_error', 1, $link);
    Test::More::is(redis_cmd('EXISTS', $link->{key}), 0,
                   "$name - nothing recorded");

    $fault->();
    $res = get($link->{url});
    Test::More::is($res->{status}, 502, "$name - an unknown job, HTML: 502");
    Test::More::like($res->{content},
                     qr{<h1>This service is unavailable\. Please try again later\.</h1>},
                     "$name - the page says so");

    Test::More::is(get($link->{url})->{status}, 200,
                   "$name - once the API answers: 200");
};


$Flows{'any order of the arguments, api_base_url the auth host'} = sub {
    my ($block, $name) = @_;
    my $link = email_job($block);
    my $auth = "127.0.0.1:$ENV{TEST_NGINX_BI_AUTH_PORT}";

    # alphabetical, as Beyond Identity sends them, and reversed
    my $url = tampered($link->{url}, sub {
        sort { $a->[0] cmp $b->[0] }
        map { $_->[0] eq 'api_base_url'
              ? ['api_base_url', "http%3A%2F%2F$auth"] : $_ } @_ });
    Test::More::is(get($url)->{status}, 200, "$name - alphabetical");

    $url = tampered($url, sub { reverse @_ });
    Test::More::is(get($url)->{status}, 200, "$name - reversed");

    # the API host, leniently: an older reference said it was that one
    $url = tampered($url, changed('api_base_url',
                    "http%3A%2F%2F127.0.0.1%3A$ENV{TEST_NGINX_BI_PORT}"));
    Test::More::is(get($url)->{status}, 200, "$name - the API host");
};


run_tests();

__DATA__

=== TEST 1: a good link reaches the app byte for byte, while the job is live
--- config
    location = /app/bind {
        passkey_invoke;

        proxy_set_header  X-Passkey-Link      $passkey_binding_link;
        proxy_set_header  X-Passkey-Job       $passkey_job_id;
        proxy_set_header  X-Passkey-Identity  $passkey_identity_id;
        proxy_set_header  X-Passkey-State     $passkey_job_state;
        proxy_set_header  X-Passkey-Method    $passkey_delivery_method;

        # $uri: the query, and so the token, never reaches the app's logs
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- response_body
ready
--- error_log eval
[qr/passkey: binding link of job [0-9a-f]{16} opened/,
 qr/\[info\] .*passkey: Beyond Identity says binding job [0-9a-f]{16} is COMPLETE/,
 qr/\[info\] .*passkey: binding link of job [0-9a-f]{16} refused: the binding job is complete/]



=== TEST 2: a static page, once with passkey_invoke_reopen off
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_invoke_reopen off;
        default_type text/html;
        alias $TEST_NGINX_HTML_DIR/bind.html;
    }
--- user_files
>>> bind.html
<!DOCTYPE html><title>bind</title><script src="/sdk.js"></script>
--- response_body
ready



=== TEST 3: the redirect style carries the link in the fragment
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_invoke_redirect /app/finish;
    }
--- response_body
ready



=== TEST 4: reopen off: two requests with one link at once, one gets through
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_invoke_reopen off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- response_body
ready



=== TEST 5: HEAD checks a link without using it up
--- config
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- response_body
ready



=== TEST 6: expired, revoked and complete jobs
--- config
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- response_body
ready
--- error_log
refused: the binding job has expired
refused: the binding job was revoked
refused: the binding job is complete
refused: no emailed binding job of this identity



=== TEST 7: tampered links are refused
--- config
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- response_body
ready
--- error_log
passkey: invalid binding link: no "token" argument
passkey: invalid binding link: more than one "api_base_url" argument
passkey: invalid binding link: an oddly spelled "token" argument
passkey: invalid binding link: an invalid "token" argument
has a foreign "api_base_url"
has a foreign "tenant_id"
has a foreign "realm_id"



=== TEST 8: api_base_url encoded or not, any case, one trailing slash
--- config
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- response_body
ready



=== TEST 9: another identity's job and a RETURN job read as unknown
--- config
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- response_body
ready



=== TEST 10: the app failing still answers no-store
--- config
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_2$uri;
    }
--- response_body
ready
--- error_log
connect() failed



=== TEST 11: an internal redirect after the check does not use the link twice
--- config
    location = /app/bind {
        passkey_invoke;
        root $TEST_NGINX_HTML_DIR;
        try_files /missing.html /bind-page.html;
    }

    location = /bind-page.html {
        passkey_invoke;
        root $TEST_NGINX_HTML_DIR;
        add_header X-Passkey-Job $passkey_job_id always;
    }
--- user_files
>>> bind-page.html
page
--- response_body
ready



=== TEST 12: POST is not allowed
--- config
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- request eval
"POST /app/bind?api_base_url=http%3A%2F%2F127.0.0.1%3A$ENV{TEST_NGINX_BI_PORT}&tenant_id=t&realm_id=r1&identity_id=0123456789abcdef&job_id=fedcba9876543210&token=" . ("p" x 48) . "\nbody"
--- error_code: 405
--- response_headers
Allow: GET, HEAD
Cache-Control: no-store
Referrer-Policy: no-referrer
Content-Type: text/html; charset=utf-8
--- response_body_like: <h1>This page opens from a link in an email\.</h1>
--- error_log
passkey: method POST not allowed for a binding link
--- no_access_log
pppppppppppppppppppp



=== TEST 13: no arguments at all, JSON asked for
--- config
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- request
GET /app/bind
--- more_headers
Accept: application/json
--- error_code: 400
--- response_headers
Cache-Control: no-store
Referrer-Policy: no-referrer
Content-Type: application/problem+json
--- response_body_like: ^\{"type":"urn:ngx-passkey:problem:invalid_link","title":"Bad Request","status":400,"detail":"this link is not a valid binding link","code":"invalid_link","request_id":"[0-9a-f]{32}"\}$
--- error_log
passkey: invalid binding link: no "api_base_url" argument



=== TEST 14: Redis down: 503
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_tenant_id tredisdown;
        passkey_redis 127.0.0.1:1;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- request eval
"GET /app/bind?api_base_url=http%3A%2F%2F127.0.0.1%3A$ENV{TEST_NGINX_BI_PORT}&tenant_id=tredisdown&realm_id=r1&identity_id=0123456789abcdef&job_id=fedcba9876543210&token=" . ("q" x 48)
--- error_code: 503
--- response_headers
Cache-Control: no-store
Referrer-Policy: no-referrer
Content-Type: text/html; charset=utf-8
--- response_body_like: code: redis_unavailable;
--- error_log eval
qr/binding link (check )?of job fedcba9876543210/
--- no_access_log
qqqqqqqqqqqqqqqqqqqq



=== TEST 15: no passkey_invoke, no checks
--- config
    location = /app/bind {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- request
GET /app/bind?token=whatever
--- error_code: 200
--- response_body
link= job= identity= state= method= uri=/app/bind



=== TEST 16: Redis hangs: 503 once passkey_redis_timeout has passed
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_tenant_id tredishangs;
        passkey_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
        passkey_redis_timeout 300ms;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- tcp_listen: $TEST_NGINX_RAND_PORT_3
--- tcp_reply_delay: 2s
--- tcp_reply eval
"+OK\r\n"
--- request eval
"GET /app/bind?api_base_url=http%3A%2F%2F127.0.0.1%3A$ENV{TEST_NGINX_BI_PORT}&tenant_id=tredishangs&realm_id=r1&identity_id=0123456789abcdef&job_id=fedcba9876543210&token=" . ("h" x 48)
--- more_headers
Accept: application/json
--- error_code: 503
--- response_headers
Cache-Control: no-store
Referrer-Policy: no-referrer
--- response_body_like: "code":"redis_unavailable"
--- error_log
timed out while checking the binding link of job fedcba9876543210



=== TEST 17: a client that leaves while Redis is asked
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_tenant_id tredisgone;
        passkey_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
        passkey_redis_timeout 1s;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- tcp_listen: $TEST_NGINX_RAND_PORT_3
--- tcp_reply_delay: 3s
--- tcp_reply eval
"+OK\r\n"
--- request eval
"GET /app/bind?api_base_url=http%3A%2F%2F127.0.0.1%3A$ENV{TEST_NGINX_BI_PORT}&tenant_id=tredisgone&realm_id=r1&identity_id=0123456789abcdef&job_id=fedcba9876543210&token=" . ("g" x 48)
--- timeout: 0.3
--- abort
--- ignore_response
--- wait: 1.5
--- error_log
client prematurely closed connection while checking the passkey binding link
--- no_error_log eval
[qr/refused|while checking the binding link/]



=== TEST 18: a redirect URL with a fragment of its own is refused
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_invoke_redirect /app/finish#$arg_job_id;
        passkey_redirect_origins https://app.example.com;
    }
--- response_body
ready
--- error_log eval
qr/"passkey_invoke_redirect" gave a URL that is empty or has a fragment, a space or a control character; the link of job [0-9a-f]{16} was used up/



=== TEST 19: a redirect built from variables may only go to an allowed origin
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_invoke_redirect http://$http_x_to/app/finish?job=$arg_job_id;
        passkey_redirect_origins http://127.0.0.1:$TEST_NGINX_SERVER_PORT;
    }
--- response_body
ready
--- error_log eval
qr/"passkey_invoke_redirect" gave a URL that is not a path here nor of an origin in "passkey_redirect_origins"; the link of job [0-9a-f]{16} was used up/



=== TEST 20: "//host" is another site, whatever its variables
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_invoke_redirect //evil.example.net/app/finish?job=$arg_job_id;
        passkey_redirect_origins http://127.0.0.1:$TEST_NGINX_SERVER_PORT;
    }
--- response_body
ready
--- error_log eval
qr/"passkey_invoke_redirect" gave a URL that is not a path here nor of an origin in "passkey_redirect_origins"; the link of job [0-9a-f]{16} was used up/



=== TEST 21: a redirect with variables needs the list of origins
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_invoke_redirect /app/finish?job=$arg_job_id;
    }
--- must_die
--- error_log
"passkey_invoke_redirect" with variables requires "passkey_redirect_origins"



=== TEST 22: access checks and limits run before the link check
--- http_config
    limit_req_zone $http_x_limit zone=bind:1m rate=1r/m;
--- config
    location = /app/bind {
        limit_req    zone=bind nodelay;
        auth_request /_session;
        passkey_invoke;

        proxy_set_header  X-Passkey-Link  $passkey_binding_link;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }

    location = /denied/bind {
        deny all;
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }

    # the session check: "X-Session: ok" is signed in
    location = /_session {
        internal;
        if ($http_x_session != "ok") {
            return 401;
        }
        return 204;
    }
--- response_body
ready



=== TEST 23: "return" beside passkey_invoke would skip the check
--- config
    location = /app/bind {
        passkey_invoke;
        return 302 /app/finish#$args;
    }
--- must_die
--- error_log
"passkey_invoke" cannot be used with "return", "rewrite", "if", "set" or "break" in location "/app/bind": they run before the link check



=== TEST 24: "rewrite ... last" beside passkey_invoke would skip it too
--- config
    location = /app/bind {
        passkey_invoke;
        rewrite ^ /app/finish last;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- must_die
--- error_log
"passkey_invoke" cannot be used with "return", "rewrite", "if", "set" or "break" in location "/app/bind"



=== TEST 25: a job Redis does not hold is verified with the API
--- config
    location = /app/bind {
        passkey_invoke;

        proxy_set_header  X-Passkey-Link  $passkey_binding_link;
        proxy_set_header  X-Passkey-Job   $passkey_job_id;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- response_body
ready
--- error_log eval
[qr/\[info\] .*passkey: binding job [0-9a-f]{16} was created elsewhere, and Beyond Identity vouches for it/,
 qr/\[info\] .*passkey: binding job [0-9a-f]{16} has another "delivery_method" at Beyond Identity/,
 qr/\[info\] .*passkey: Beyond Identity does not know binding job fedcba9876543210/]



=== TEST 26: passkey_invoke_unknown_jobs refuse
--- config
    location = /app/bind {
        passkey_invoke;
        passkey_invoke_unknown_jobs refuse;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- response_body
ready
--- error_log eval
qr/\[info\] .*refused: a job this deployment did not create/



=== TEST 27: the API cannot be asked
--- config
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- response_body
ready
--- error_log eval
[qr/\[error\] .*passkey: cannot read binding job [0-9a-f]{16} \(GET \S+ answered 503 "service_unavailable" "[^"]*"\), its link is handed over on what redis holds/,
 qr/\[error\] .*passkey: binding job [0-9a-f]{16}, which redis does not hold, cannot be verified: its link is refused/]



=== TEST 28: any order of the arguments, api_base_url the auth host
--- config
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- response_body
ready
