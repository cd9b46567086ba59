
Ñ
b

10.0.0.5»¹"Nspiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"kiget
x-authentik-usernamezoÃ«
x-authentik-groupseng|ops"/api/documents/d-1*APP.example.test.