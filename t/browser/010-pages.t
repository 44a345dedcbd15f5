# The example pages and the demo app's pages in a real browser: Debian's
# headless Chromium, driven by util/browser/pages (playwright-core), opens
# them on the examples' nginx (t/Examples.pm), which serves Beyond
# Identity's SDK (@beyondidentity/bi-sdk-js, util/sdk) from the same site.
# What the user sees is asserted:
#
# - the demo app (examples/nginx.conf): the demo login, "Add a passkey"
#   (a RETURN bind from the page), the SDK taking the link; the page of
#   an emailed link, handed over by nginx; a screenshot of the first;
# - examples/bind.html (invoke-page.conf) and examples/finish.html
#   (invoke-redirect.conf) opened from an emailed link: the SDK takes it
#   and bindPasskey() runs (and stops at the stand-in's http address,
#   which Beyond Identity's SDK refuses); a link that is not one is
#   refused by the SDK on the page;
# - nginx's refusal of a used link and of a foreign one, as a page;
# - no page makes a request to any host but 127.0.0.1, and a check that
#   such a request would be seen.
#
# Not part of "make test": "make test-browser" installs Chromium and
# playwright-core (util/browser-deps) and runs this directory.  Set
# PASSKEY_DEMO_SCREENSHOT to a file name to keep the screenshot there
# (docs/demo.png is made so); it is in the servroot otherwise.
#
# No blocks: the tests are the pages below.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use t::Examples;
use Test::More;
use IPC::Run ();
use JSON::PP ();
use URI::Escape qw(uri_escape);

my $driver = 'util/browser/pages';
my $chromium = $ENV{CHROMIUM} || '/usr/bin/chromium';
my $screenshot = $ENV{PASSKEY_DEMO_SCREENSHOT} || "$base/demo.png";
my $nginx_host = '127.0.0.1';
my $auth_port = $ENV{TEST_NGINX_BI_AUTH_PORT};

# the pages' text, decoded from the driver's JSON, in diagnostics
binmode(Test::More->builder->$_, ':encoding(UTF-8)')
    for qw(output failure_output todo_output);

# every visit's results, for the check of the hosts at the end
my @visited;

# the prerequisites, or a failure that says what installs them
unless (-x $chromium && -d 'util/browser/node_modules/playwright-core') {
    fail("Chromium ($chromium) and playwright-core (util/browser)"
         . " are installed: run make test-browser, which installs them");
    exit 1;
}

# Runs the driver with the visits (their URLs hold binding links: on its
# standard input, never on the command line) and returns its results,
# by visit name.
sub browse {
    my (@visits) = @_;
    my ($in, $out, $err) = (JSON::PP->new->encode({ visits => \@visits }));

    my $ran = eval {
        IPC::Run::run([$driver], \$in, \$out, \$err,
                      IPC::Run::timeout(150));
    };
    ok($ran, 'the browser ran ' . join(', ', map { $_->{name} } @visits))
        or diag($@ || $err);

    my $res = eval { JSON::PP::decode_json($out) } || { visits => [] };
    my %by_name;
    for my $v (@{ $res->{visits} }) {
        my @failed = grep { $_->{error} } @{ $v->{steps} };
        ok(!@failed, "$v->{name}: every step ran")
            or diag(map { "$_->{op}: $_->{error}\n" } @failed);
        push @visited, $v;
        $by_name{ $v->{name} } = $v;
    }
    return \%by_name;
}

# the result of a visit's step of a kind: the first, or the Nth (from 0)
sub step {
    my ($v, $op, $n) = @_;
    my @steps = grep { $_->{op} eq $op } @{ $v->{steps} || [] };
    return $steps[$n // 0] || {};
}

sub status_of { step($_[0], 'goto')->{status} // 0 }

# the passkey is made (the stand-in plays the SDK's part): the link is
# done
sub complete {
    my ($job) = @_;
    my $res = ua()->post("$bi_url/__fake/jobs/$job/complete",
        { headers => { 'Content-Type' => 'application/json' },
          content => '{}' });
    is($res->{status}, 200, "the stand-in completes job $job");
}

# the requests a visit made, as "METHOD path status"
sub requests {
    my ($v) = @_;
    return map {
        my $path = $_->{url} =~ s{^\w+://[^/]+}{}r;
        $path =~ s/\?.*//;
        "$_->{method} $path " . ($_->{status} // $_->{failure} // '-')
    } @{ $v->{requests} || [] };
}

sub no_script_errors {
    my ($v) = @_;
    is_deeply($v->{errors}, [], "$v->{name}: no script error")
        or diag(explain($v->{errors}));
}

# the page nginx answers a refused link with
sub refused_page {
    my ($v, $status, $text) = @_;
    is(status_of($v), $status, "$v->{name}: nginx answers $status");
    like(step($v, 'text')->{text} // '', qr/\Q$text\E/,
         "$v->{name}: the user reads \"$text\"");
}

sub open_link {
    my ($name, $url) = @_;
    return { name => $name, steps => [{ goto => $url }, { text => 'body' }] };
}

# a link of another tenant: not issued for this site
sub foreign { $_[0] =~ s/([?&]tenant_id=)[^&]+/${1}another-tenant/r }

# Beyond Identity's SDK on the page took the link and bindPasskey() ran:
# it refuses the stand-in's http api_base_url (only https and Beyond
# Identity's domains; the page's own host has a port, so it matches
# nothing) before it sends anything.  A link the SDK does not take shows
# "not opened from a passkey link" instead.
sub sdk_took_link {
    my ($v) = @_;
    my $detail = step($v, 'text', 1)->{text} // '';

    is(status_of($v), 200, "$v->{name}: the page answers 200");
    is(step($v, 'wait')->{text}, 'Your passkey could not be set up.',
       "$v->{name}: the SDK took the link and bindPasskey() ran, and"
       . ' the page says it stopped');
    like($detail, qr/\bDisallowedDomain\b/,
         "$v->{name}: ... at the http address of the stand-in");
    unlike($detail, qr{://|token}, "$v->{name}: ... without the link");
    no_script_errors($v);
}

# the steps that wait for a page's script
my @page_result = ({ wait => '#status', match => 'could not|not opened' },
                   { text => '#status' }, { text => '#detail' });

fake_config(qq({"invoke_url":"$nginx_url/app"}));

# --- the demo app: examples/nginx.conf and util/demo-app -----------------

{
    my $prefix = render('nginx.conf');
    my $name = 'demo app';
    ok(start_app(), "$name: util/demo-app starts");
    ok(start($prefix), "$name: examples/nginx.conf starts");

    my $flow = email_flow("$name, emailed link");

    my $r = browse(
        { name => "$name: home page", steps => [
            { goto => "$nginx_url/app/" },
            { text => 'body' },
            { fill => 'input[name=username]', value => 'alice' },
            { fill => 'input[name=password]', value => 'alice-demo-pw' },
            { fill => 'input[name=email]', value => 'alice@example.com' },
            { click => 'form[action="/login"] button' },
            { wait => 'body', match => 'Signed in as' },
            { click => '#add' },
            { wait => '#status', match => 'SDK|answered|could not' },
            { text => '#link' },
            { screenshot => $screenshot },
        ] },
        { name => "$name: the page of an emailed link", steps => [
            { goto => $flow->{url} },
            { wait => '#status', match => 'takes|does not|did not' },
            { text => '#same' },
        ] },
        open_link("$name: a foreign link", foreign($flow->{url})),
    );

    my $v = $r->{"$name: home page"} || {};
    is(status_of($v), 200, "$v->{name}: 200");
    like(step($v, 'text')->{text}, qr/Not signed in\./,
         "$v->{name}: not signed in at first");
    like(step($v, 'wait')->{text}, qr/Signed in as alice\./,
         "$v->{name}: the demo login signs alice in");

    my $status = step($v, 'wait', 1)->{text} // '';
    like($status,
         qr/^Job \w+, valid until \d{4}-\S+Z: Beyond Identity's SDK takes its/,
         "$v->{name}: Add a passkey makes a job, and the SDK takes its link");
    my ($job) = $status =~ /^Job (\w+),/;
    my $want = qr{^http://127\.0\.0\.1:\Q$auth_port\E/v1/tenants/}
               . qr{\Q$tenant\E/realms/demo/identities/\w+/}
               . qr{credential-binding-jobs/}
               . qr{\Q@{[ $job // 'none' ]}\E:invokeAuthenticator}
               . qr{\?token=\x{2026}$};
    like(step($v, 'text', 1)->{text} // '', qr/$want/,
         "$v->{name}: ... the job's link on the auth host, shown without"
         . ' its token');
    my @requests = requests($v);
    ok((grep { $_ eq 'POST /passkey/bind 200' } @requests),
       "$v->{name}: the page asked nginx (POST /passkey/bind)")
        or diag(explain(\@requests));
    ok((grep { $_ eq 'GET /app/bi-sdk.js 200' } @requests),
       "$v->{name}: ... and loaded the SDK from this site");
    no_script_errors($v);
    ok(-s $screenshot > 10000, "$v->{name}: a screenshot ($screenshot)");

    $v = $r->{"$name: the page of an emailed link"} || {};
    is(status_of($v), 200, "$v->{name}: 200, through nginx's check");
    is(step($v, 'wait')->{text},
       "Beyond Identity's SDK takes this link. With a real tenant, this page"
       . ' would now call bindPasskey() with it, and the browser would set'
       . ' up the passkey.',
       "$v->{name}: the SDK takes the link the app was handed");
    is(step($v, 'text')->{text},
       "The link the app got is this page's URL, byte for byte.",
       "$v->{name}: ... which is the page's URL");
    no_script_errors($v);

    refused_page($r->{"$name: a foreign link"} || {}, 403,
                 'This link was not issued for this site.');

    complete($flow->{job});

    $r = browse(open_link("$name: a used link", $flow->{url}));
    refused_page($r->{"$name: a used link"} || {}, 410,
                 'A passkey was already set up with this link.');

    stop($prefix);
    stop_app();

    logs_clean($name, "$prefix/logs", $flow);
    logs_clean($name, "$base/app", $flow);
}

# --- examples/bind.html: the static page of invoke-page.conf -------------

{
    my $prefix = render('invoke-page.conf');
    my $name = 'bind.html';
    ok(start($prefix), "$name: examples/invoke-page.conf starts");

    my $flow = email_flow("$name, emailed link");

    my $r = browse(
        { name => "$name: an emailed link",
          steps => [{ goto => $flow->{url} }, @page_result] },
        open_link("$name: a foreign link", foreign($flow->{url})),
    );

    my $v = $r->{"$name: an emailed link"} || {};
    sdk_took_link($v);
    is_deeply([requests($v)], ['GET /app/bind 200', 'GET /app/bi-sdk.js 200'],
              "$v->{name}: the page loaded the SDK, and sent the link"
              . ' nowhere');

    refused_page($r->{"$name: a foreign link"} || {}, 403,
                 'This link was not issued for this site.');

    complete($flow->{job});

    $r = browse(open_link("$name: a used link", $flow->{url}));
    refused_page($r->{"$name: a used link"} || {}, 410,
                 'A passkey was already set up with this link.');

    stop($prefix);
    logs_clean($name, "$prefix/logs", $flow);
}

# --- examples/finish.html: the frontend route of invoke-redirect.conf ----

{
    my $prefix = render('invoke-redirect.conf');
    my $name = 'finish.html';
    ok(start($prefix), "$name: examples/invoke-redirect.conf starts");

    my $flow = email_flow("$name, emailed link");

    # a /bind URL without its token: a broken link, for the SDK to refuse
    my $broken = $flow->{url} =~ s/&token=[^&]+//r;

    my $r = browse(
        { name => "$name: an emailed link", steps => [
            { goto => $flow->{url} }, @page_result,
            { eval => 'location.href' },
        ] },
        { name => "$name: a broken link", steps => [
            { goto => "$nginx_url/app/finish#" . uri_escape($broken) },
            @page_result,
        ] },
        open_link("$name: a foreign link", foreign($flow->{url})),
        # the check of the hosts below can fail: a request to another
        # host, by name or by address, is seen (and stopped)
        { name => "$name: a third-party request", steps => [
            { goto => "$nginx_url/app/finish" },
            { eval => 'fetch("https://cdn.example.com/sdk.js")'
                      . '.then(() => "fetched", () => "failed")' },
            { eval => 'fetch("http://192.0.2.1/")'
                      . '.then(() => "fetched", () => "failed")' },
        ] },
    );

    my $v = $r->{"$name: an emailed link"} || {};
    sdk_took_link($v);
    is(step($v, 'eval')->{value}, "$nginx_url/app/finish",
       "$v->{name}: the link is gone from the address bar");
    is_deeply([requests($v)],
              ['GET /app/bind 302', 'GET /app/finish 200',
               'GET /app/bi-sdk.js 200'],
              "$v->{name}: redirected to the page, which loaded the SDK"
              . ' and sent the link nowhere');

    $v = $r->{"$name: a broken link"} || {};
    is(step($v, 'wait')->{text},
       'This page was not opened from a passkey link.',
       "$v->{name}: the SDK on the page refuses it");
    no_script_errors($v);

    refused_page($r->{"$name: a foreign link"} || {}, 403,
                 'This link was not issued for this site.');

    $v = $r->{"$name: a third-party request"} || {};
    is(step($v, 'eval')->{value}, 'failed',
       "$v->{name}: fails, by name");
    is(step($v, 'eval', 1)->{value}, 'failed', "$v->{name}: ... by address");
    my @away = map { "$_->{host} " . ($_->{failure} // 'sent') }
               grep { $_->{host} ne $nginx_host } @{ $v->{requests} };
    s/ net::ERR_BLOCKED_BY_CLIENT\b.*/ stopped/ for @away;
    is_deeply(\@away,
              ['cdn.example.com stopped', '192.0.2.1 stopped'],
              "$v->{name}: ... and each is seen, stopped before it was sent");
    @visited = grep { $_ != $v } @visited;

    complete($flow->{job});

    $r = browse(open_link("$name: a used link", $flow->{url}));
    refused_page($r->{"$name: a used link"} || {}, 410,
                 'A passkey was already set up with this link.');

    stop($prefix);
    logs_clean($name, "$prefix/logs", $flow);
}

# --- no request left 127.0.0.1 -------------------------------------------

{
    my @away = map { my $v = $_; map { "$v->{name}: $_->{url}" }
                     grep { $_->{host} ne $nginx_host } @{ $v->{requests} } }
               @visited;
    my $count = map { @{ $_->{requests} } } @visited;
    is_deeply(\@away, [], "the pages made $count requests, all to"
              . " $nginx_host");
}
