# The emailed link handed over without an app: examples/invoke-page.conf
# (a static page, examples/bind.html) and examples/invoke-redirect.conf
# (a redirect to a frontend route, examples/finish.html, the link in the
# fragment), each started on test ports against the stand-in and Redis
# (t/Examples.pm).  A sign-up by email, the link followed through the
# stand-in's outbox to /app/bind, handed over in the example's style,
# opened again while the job is live and done once the passkey is made.
# None of the logs may hold a token or a binding link.  The third style,
# proxied to the app, is examples/nginx.conf's: t/071-examples-quickstart.t.
#
# No blocks: the tests are the requests below.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use t::Examples;
use URI::Escape qw(uri_unescape);

# emailed links land on the example's nginx
fake_config(qq({"invoke_url":"$nginx_url/app"}));

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

    $res = post_signup('{"username":"example-x","email":"x@example.com"}',
                       Origin => 'https://evil.example');
    problem("$name: a cross-site sign-up", $res, 403, 'forbidden_origin');

    $res = post_bind('{"username":"example-x"}');
    is($res->{status}, 404, "$name: no bind without a login");

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
    sdk_record_link(uri_unescape($fragment // ''));
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
