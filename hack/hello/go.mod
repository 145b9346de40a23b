module freshet.local/hello

go 1.22
