
1"/-POST"/api/x?b=2&a=1*app.example.test:8443