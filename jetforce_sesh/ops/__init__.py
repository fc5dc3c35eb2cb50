"""Running a capsule in public: the admin pages, the health path and the rate
limits. Builds on the session core and the server's figures; the command line
turns each on with its flag."""
