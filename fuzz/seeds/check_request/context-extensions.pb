
ù"`
Ä±ÔÜVDELETE
x-request-idr-1!
x-envoy-auth-partial-bodytrue"
/billing/1*[::1]:80R
appbillingR
cedar_dry_runtrueb
app.example.test