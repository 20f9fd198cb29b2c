import unittest

from src.greeter import greet


class GreetTest(unittest.TestCase):
    def test_greet(self) -> None:
        self.assertEqual(greet("pitstop"), "hello, pitstop")
