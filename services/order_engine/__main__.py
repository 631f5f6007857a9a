from nexus.runtime import main
from order_engine.service import OrderEngine

main(OrderEngine)
