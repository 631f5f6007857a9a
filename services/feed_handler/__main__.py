from feed_handler.service import FeedHandler
from nexus.runtime import main

main(FeedHandler)
