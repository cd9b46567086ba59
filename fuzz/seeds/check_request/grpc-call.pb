
t
&"$spiffe://cluster.local/ns/app/sa/web"JHPOST&
content-typeapplication/grpc+proto"/pkg.Service/Method*svc