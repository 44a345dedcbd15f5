# passkey_invoke and the API: a link's job is read from Beyond Identity at
# each opening.  Jobs that Redis does not hold (made in the Admin Console,
# by batch jobs or by another backend, or whose key is gone) are verified
# there and recorded, or refused with passkey_invoke_unknown_jobs refuse;
# the API down; links in any argument order, on the auth host.
#
# As in t/080-invoke.t (whose helpers, t/Invoke.pm, this uses), the links
# are made for real and each flow runs after its block's "GET /ready".

use t::Passkey;
use Test::Nginx::Socket 'no_plan';

repeat_each(1);
no_shuffle();

# nginx's own debug lines show the request line as it came, token and
# all: never run production at "debug", nor these tests
log_level('info');

our %Flows;

require t::Invoke;

run_flows(\%Flows);


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

=== TEST 1: a job Redis does not hold is verified with the API
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



=== TEST 2: passkey_invoke_unknown_jobs refuse
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



=== TEST 3: the API cannot be asked
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



=== TEST 4: any order of the arguments, api_base_url the auth host
--- config
    location = /app/bind {
        passkey_invoke;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$uri;
    }
--- response_body
ready
