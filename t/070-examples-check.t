# The configurations in examples/ are valid as shipped: each one, rendered
# as a user would edit it (module path, test ports, tenant: t/Examples.pm),
# passes "nginx -t".  The files 071 to 075 start them and check their
# answers.
#
# No blocks: the tests are the runs of nginx below.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use t::Examples;

for my $name (map { s{^examples/}{}r } sort glob('examples/*.conf')) {
    my $prefix = render($name);
    ok(nginx($prefix, '-t', '-q'), "examples/$name passes nginx -t")
        or diag(`cat $prefix/logs/stderr`);
}
