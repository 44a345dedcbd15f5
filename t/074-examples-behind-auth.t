# examples/behind-auth.conf, started on test ports against the stand-in
# and Redis (t/Examples.pm), with the toy login service it holds: the
# username and email of a bind come from the login service, never from
# the body; no session, no job; cross-site requests refused.
#
# No blocks: the tests are the requests below.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use t::Examples;

# the username and email come from the login service, not from the body
{
    my $prefix = render('behind-auth.conf');
    my $name = 'behind-auth';
    ok(start($prefix), 'examples/behind-auth.conf starts');

    my $res = post_bind('{}', Authorization => 'Bearer alice-session');
    is($res->{status}, 200, "$name: a signed-in user gets a job");
    like($res->{content}, qr/"credential_binding_link":"http/,
         "$name: ... and the link");

    $res = post_bind('{}');
    is($res->{status}, 401, "$name: no session, no job");

    $res = post_bind('{"username":"mallory"}',
                     Authorization => 'Bearer bob-session');
    problem("$name: bob naming mallory", $res, 403, 'identity_mismatch');

    $res = post_bind('{"email":"mallory@example.com"}',
                     Authorization => 'Bearer bob-session');
    problem("$name: bob naming mallory's address", $res, 403,
            'identity_mismatch');

    $res = post_bind('{}', Authorization => 'Bearer bob-session',
                     Origin => 'https://evil.example');
    problem("$name: a cross-site request", $res, 403, 'forbidden_origin');

    $res = post_bind('{"username":"bob"}',
                     Authorization => 'Bearer bob-session');
    is($res->{status}, 200, "$name: bob gets a job");

    stop($prefix);

    my $ids = identities();
    my %by_name = map { ($_->{traits}{username} // '') => $_ }
                  @{ decode({ content => $ids })->{identities} || [] };
    ok($by_name{alice}, "$name: alice was created");
    is($by_name{bob} && $by_name{bob}{traits}{primary_email_address},
       'bob@example.com', "$name: bob was created, with the login's address");
    unlike($ids, qr/mallory/, "$name: mallory was not");
}
