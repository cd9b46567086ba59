
=
&"$spiffe://cluster.local/ns/app/sa/web

10.0.0.9¸*