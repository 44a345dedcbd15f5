# examples/frontends.conf, started on test ports against the stand-in and
# Redis (t/Examples.pm): Beyond Identity's example frontends, request by
# request as they send them, each reading the link where it looks for it,
# with CORS for the two cross-origin pages; pages of other origins are
# refused without CORS headers, and a taken username never gets a link.
# None of the logs may hold a token or a binding link.  The module's side
# of it, passkey_bind_format, is in t/170-frontends.t.
#
# No blocks: the tests are the requests below.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use t::Examples;

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
