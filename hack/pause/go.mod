module freshet.local/pause

go 1.22
